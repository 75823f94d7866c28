/*-------------------------------------------------------------------------
 *
 * convert_target.c
 *		What a write may target: open and lock a target table and check its
 *		kind, the caller's privileges to insert into it, and which column
 *		sets are unique keys of it.  Used by the write functions at the call
 *		and by the apply path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xlog.h"
#include "catalog/catalog.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "compat.h"
#include "convert.h"

/*
 * Open and lock a write target and check that asyncwrite may write to it
 * (its kind, not the caller's privileges: see aw_check_insert_privileges).
 * RowExclusiveLock, as INSERT takes, is kept until the caller's transaction
 * ends so the row layout cannot change under it.
 */
Relation
aw_open_target(Oid relid)
{
	Relation	rel;
	char		relkind;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot queue writes during recovery"),
				 errdetail("This server is a standby or is still recovering."),
				 errhint("Call asyncwrite functions on the primary.")));
	PreventCommandIfReadOnly("asyncwrite write functions");

	rel = try_relation_open(relid, RowExclusiveLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));

	relkind = rel->rd_rel->relkind;
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE &&
		relkind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot queue writes to \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail_relkind_not_supported(relkind),
				 errhint("asyncwrite writes to tables, partitioned tables and foreign tables.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot queue writes to temporary table \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail("A temporary table is visible only to its own session, not to the apply worker."),
				 errhint("Insert into the temporary table directly.")));
	if (IsCatalogRelation(rel))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot queue writes to system catalog \"%s\"",
						RelationGetRelationName(rel))));
	return rel;
}

/* Check that the caller may use the target's schema, as naming it needs. */
void
aw_check_schema_usage(Relation rel)
{
	AclResult	aclresult = aw_namespace_aclcheck(RelationGetNamespace(rel),
												  GetUserId(), ACL_USAGE);

	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_SCHEMA,
					   get_namespace_name(RelationGetNamespace(rel)));
}

/*
 * Whether the caller may insert into every column of the target (the table
 * privilege, or each column's), after checking that it may use the schema.
 * If not, a write gives only the columns it names, each checked with
 * aw_check_column_privilege(), and the others take their defaults when it
 * is applied: as an INSERT naming only those columns.
 */
bool
aw_may_insert_all(Relation rel)
{
	aw_check_schema_usage(rel);
	return aw_role_may_insert_all(rel, GetUserId());
}

/* Whether roleid may insert into every column of the target. */
bool
aw_role_may_insert_all(Relation rel, Oid userid)
{
	Oid			relid = RelationGetRelid(rel);
	TupleDesc	desc = RelationGetDescr(rel);

	if (pg_class_aclcheck(relid, userid, ACL_INSERT) == ACLCHECK_OK)
		return true;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		if (pg_attribute_aclcheck(relid, att->attnum, userid,
								  ACL_INSERT) != ACLCHECK_OK)
			return false;
	}
	return true;
}

/*
 * Check that the caller has one privilege on each of the columns
 * attnums[0..n) (or on the table); with no column, the table privilege.
 */
void
aw_check_column_privilege(Relation rel, AclMode mode, const AttrNumber *attnums,
						  int n)
{
	Oid			relid = RelationGetRelid(rel);
	Oid			userid = GetUserId();

	if (pg_class_aclcheck(relid, userid, mode) == ACLCHECK_OK)
		return;
	for (int i = 0; i < n; i++)
		if (pg_attribute_aclcheck(relid, attnums[i], userid, mode) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(rel->rd_rel->relkind),
						   RelationGetRelationName(rel));
	if (n == 0)
		aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(rel->rd_rel->relkind),
					   RelationGetRelationName(rel));
}

/* The attribute numbers of the columns given[0..natts) marks, into out. */
int
aw_given_attnums(const bool *given, int natts, AttrNumber *out)
{
	int			n = 0;

	for (int i = 0; i < natts; i++)
		if (given[i])
			out[n++] = i + 1;
	return n;
}

/* Check that the caller may insert into every column of the target. */
void
aw_check_insert_privileges(Relation rel)
{
	if (!aw_may_insert_all(rel))
		aclcheck_error(ACLCHECK_NO_PRIV,
					   get_relkind_objtype(rel->rd_rel->relkind),
					   RelationGetRelationName(rel));
}

/* Whether attnum is among the first n of attnums. */
bool
aw_attnum_in(const AttrNumber *attnums, int n, AttrNumber attnum)
{
	for (int i = 0; i < n; i++)
		if (attnums[i] == attnum)
			return true;
	return false;
}

/*
 * Refuse a key-based write (fname: "upsert", "update", ...) to a foreign
 * table, or to a partitioned table with a foreign partition, neither of
 * which can have the unique index such a write needs (0A000 rather than
 * asking for an index that cannot be made).  Called only where no unique
 * key was found, so writes to other targets pay nothing for it.
 */
void
aw_refuse_keyed_foreign(Relation rel, const char *fname)
{
	List	   *parts;
	ListCell   *lc;

	if (rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("asyncwrite.%s() cannot write to foreign table \"%s\"",
						fname, RelationGetRelationName(rel)),
				 errdetail("A key-based write needs a unique index on its target, and a foreign table has none."),
				 errhint("Queue inserts with asyncwrite.insert(), or queue key-based writes on the server that holds the table.")));
	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		return;

	/* Only relkinds are read: the partitions need no lock. */
	parts = find_all_inheritors(RelationGetRelid(rel), NoLock, NULL);
	foreach(lc, parts)
	{
		Oid			part = lfirst_oid(lc);

		if (get_rel_relkind(part) == RELKIND_FOREIGN_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("asyncwrite.%s() cannot write to partitioned table \"%s\"",
							fname, RelationGetRelationName(rel)),
					 errdetail("Its partition \"%s\" is a foreign table, so it can have no unique index, which a key-based write needs.",
							   get_rel_name(part)),
					 errhint("Queue inserts with asyncwrite.insert(), or queue key-based writes on the server that holds the table.")));
	}
	list_free(parts);
}

/*
 * Whether a valid unique index of the target has exactly the key columns
 * (for ON CONFLICT also immediate; never partial or on expressions).  With
 * ops, also set the index's equality operator of each key column, in the
 * key's order.  Used by the write functions at call time and by the plans.
 */
bool
aw_find_key_index(Relation rel, const AttrNumber *keys, int nkeys,
				  bool for_conflict, Oid *ops)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		found = false;

	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ind = idx->rd_index;
		bool		match = ind->indisunique && ind->indisvalid &&
		ind->indnkeyatts == nkeys &&
		heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL) &&
		heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL) &&
		(!for_conflict || ind->indimmediate);

		/* Every key column is an index column, and every index column a key. */
		for (int k = 0; match && k < nkeys; k++)
		{
			int			pos = -1;

			for (int j = 0; j < ind->indnkeyatts; j++)
				if (ind->indkey.values[j] == keys[k])
					pos = j;
			match = (pos >= 0);
			if (match && ops != NULL)
			{
				ops[k] = get_opfamily_member(idx->rd_opfamily[pos], idx->rd_opcintype[pos],
											 idx->rd_opcintype[pos], BTEqualStrategyNumber);
				match = OidIsValid(ops[k]);
			}
		}
		for (int j = 0; match && j < ind->indnkeyatts; j++)
			match = aw_attnum_in(keys, nkeys, ind->indkey.values[j]);
		index_close(idx, AccessShareLock);
		if (match)
		{
			found = true;
			break;
		}
	}
	list_free(indexes);
	return found;
}
