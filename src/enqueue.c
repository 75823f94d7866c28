/*-------------------------------------------------------------------------
 *
 * enqueue.c
 *		The SQL write functions: check the target and the caller's
 *		privileges, convert the row in the caller's session, and queue it
 *		(or, with asyncwrite.enabled off, write it at once).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "utils/builtins.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "asyncwrite.h"

PG_FUNCTION_INFO_V1(aw_insert_jsonb);
PG_FUNCTION_INFO_V1(aw_insert_record);
PG_FUNCTION_INFO_V1(aw_insert_text);

/* Refuse a NULL argument with a clear error. */
static void
aw_require_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/* Check that the caller may insert every column a queued row fills. */
static void
aw_check_insert_privileges(Relation rel)
{
	Oid			userid = GetUserId();
	Oid			relid = RelationGetRelid(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	AclResult	aclresult;

	aclresult = pg_namespace_aclcheck(RelationGetNamespace(rel), userid,
									  ACL_USAGE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_SCHEMA,
					   get_namespace_name(RelationGetNamespace(rel)));

	if (pg_class_aclcheck(relid, userid, ACL_INSERT) == ACLCHECK_OK)
		return;

	/* Without the table privilege, every column written needs its own. */
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		if (pg_attribute_aclcheck(relid, att->attnum, userid,
								  ACL_INSERT) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV,
						   get_relkind_objtype(rel->rd_rel->relkind),
						   RelationGetRelationName(rel));
	}
}

/*
 * Open and lock a write target and check that asyncwrite may write to it
 * for the caller.  RowExclusiveLock, as INSERT takes, is kept until the
 * caller's transaction ends so the row layout cannot change under it.
 */
static Relation
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

	aw_check_insert_privileges(rel);
	return rel;
}

/*
 * Queue a converted row, or write it now when asyncwrite is disabled or
 * when the queue is full and asyncwrite.on_full is "sync".  Returns the
 * write id, or NULL for a synchronous write.
 */
static Datum
aw_submit_row(FunctionCallInfo fcinfo, Relation rel, AwTarget *t, Datum row)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(row);
	uint64		write_id;

	if (aw_enabled &&
		aw_queue_submit(RelationGetRelid(rel), GetUserId(),
						aw_target_fingerprint(t),
						(uint16) RelationGetDescr(rel)->natts,
						AW_KIND_INSERT, 0, td,
						HeapTupleHeaderGetDatumLength(td), NULL, 0, &write_id))
	{
		table_close(rel, NoLock);
		PG_RETURN_INT64((int64) write_id);
	}
	aw_apply_sync(rel, row);
	table_close(rel, NoLock);
	PG_RETURN_NULL();
}

/* asyncwrite.insert(target regclass, data jsonb) */
Datum
aw_insert_jsonb(PG_FUNCTION_ARGS)
{
	Relation	rel;
	AwTarget   *t;
	Datum		row;

	aw_require_arg(fcinfo, 0, "target");
	aw_require_arg(fcinfo, 1, "data");
	if (aw_enabled)
		aw_check_available();
	rel = aw_open_target(PG_GETARG_OID(0));
	t = aw_target_get(rel);
	row = aw_row_from_jsonb(rel, t, PG_GETARG_DATUM(1), false);
	return aw_submit_row(fcinfo, rel, t, row);
}

/*
 * asyncwrite.insert(target regclass, data text): a string literal is read
 * as a jsonb object, so that insert('t', '{"a": 1}') needs no cast.
 */
Datum
aw_insert_text(PG_FUNCTION_ARGS)
{
	Relation	rel;
	AwTarget   *t;
	Datum		row;
	Datum		jsonb;

	aw_require_arg(fcinfo, 0, "target");
	aw_require_arg(fcinfo, 1, "data");
	if (aw_enabled)
		aw_check_available();
	jsonb = DirectFunctionCall1(jsonb_in,
								CStringGetDatum(TextDatumGetCString(PG_GETARG_DATUM(1))));
	rel = aw_open_target(PG_GETARG_OID(0));
	t = aw_target_get(rel);
	row = aw_row_from_jsonb(rel, t, jsonb, false);
	return aw_submit_row(fcinfo, rel, t, row);
}

/* asyncwrite.insert(target regclass, rec anyelement) */
Datum
aw_insert_record(PG_FUNCTION_ARGS)
{
	Oid			argtype = get_fn_expr_argtype(fcinfo->flinfo, 1);
	Relation	rel;
	AwTarget   *t;
	Datum		row;

	aw_require_arg(fcinfo, 0, "target");
	aw_require_arg(fcinfo, 1, "row");
	if (!type_is_rowtype(argtype))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("asyncwrite.insert() needs a jsonb object or a composite value, not type %s",
						format_type_be(argtype)),
				 errhint("Pass ROW(...)::table_name, a table row, or a jsonb object.")));
	if (aw_enabled)
		aw_check_available();
	rel = aw_open_target(PG_GETARG_OID(0));
	t = aw_target_get(rel);
	row = aw_row_from_record(rel, t, PG_GETARG_DATUM(1), argtype);
	return aw_submit_row(fcinfo, rel, t, row);
}
