/*-------------------------------------------------------------------------
 *
 * api_keyed.c
 *		The key-based write functions: asyncwrite.upsert(), update(),
 *		delete() and increment().  Like insert(), each checks the target and
 *		the caller's privileges and converts its row in the caller's session;
 *		the row carries the key columns (a unique key of the target) and the
 *		columns set or added to, which apply_plan.c turns into one set-based
 *		statement per run of such writes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "compat.h"
#include "api.h"
#include "submit.h"

PG_FUNCTION_INFO_V1(aw_upsert);
PG_FUNCTION_INFO_V1(aw_update);
PG_FUNCTION_INFO_V1(aw_delete);
PG_FUNCTION_INFO_V1(aw_increment);

/* Attribute number of a column named in an argument, or an error. */
static AttrNumber
aw_attnum(Relation rel, const char *name)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);

	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						name, RelationGetRelationName(rel))));
	return attnum;
}

/* Attribute numbers of the keys of a jsonb object, in the object's order. */
static int
aw_jsonb_attnums(Relation rel, Datum jsonb, const char *what, AttrNumber *out)
{
	Jsonb	   *jb = DatumGetJsonbP(jsonb);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;

	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("asyncwrite %s must be a jsonb object", what),
				 errhint("Pass an object whose keys are column names, as in '{\"id\": 1}'.")));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			out[n++] = aw_attnum(rel, pnstrdup(v.val.string.val, v.val.string.len));
	}
	return n;
}

/*
 * Check that the key columns are exactly the columns of a unique index of
 * the target (for ON CONFLICT: immediate, without predicate or expression),
 * for the write function fname.
 */
static void
aw_require_unique_key(Relation rel, AwTarget *t, const AttrNumber *keys,
					  int nkeys, bool for_conflict, const char *fname)
{
	/* Found before for this target (the cache is reset by relcache inval). */
	if (aw_target_key_known(t, keys, nkeys, for_conflict))
		return;
	if (nkeys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the key names no column")));
	if (aw_find_key_index(rel, keys, nkeys, for_conflict, NULL))
	{
		aw_target_key_remember(t, keys, nkeys, for_conflict);
		return;
	}
	aw_refuse_keyed_foreign(rel, fname);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
			 errmsg("the key columns are not a unique key of \"%s\"",
					RelationGetRelationName(rel)),
			 errdetail("The key must name exactly the columns of its primary key or of a unique index%s.",
					   for_conflict ? " (not deferrable, not partial)" : ""),
			 errhint("Add a unique constraint on those columns, or name the key columns.")));
}

/* Refuse a NULL in a key column of the converted row. */
static void
aw_require_key_values(Relation rel, Datum row, const AttrNumber *keys, int nkeys)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(row);
	HeapTupleData tup;

	aw_tuple_over(td, &tup);
	for (int i = 0; i < nkeys; i++)
	{
		bool		isnull;

		(void) heap_getattr(&tup, keys[i], RelationGetDescr(rel), &isnull);
		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("key column \"%s\" must not be null",
							get_attname(RelationGetRelid(rel), keys[i], false))));
	}
}

/* A jsonb key object and data object as one, refusing overlapping keys. */
static Datum
aw_merge_objects(Relation rel, Datum key, const AttrNumber *keys, int nkeys,
				 Datum data, const AttrNumber *set, int nset, const char *what)
{
	for (int i = 0; i < nset; i++)
		if (aw_attnum_in(keys, nkeys, set[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("column \"%s\" is both in the key and in the %s",
							get_attname(RelationGetRelid(rel), set[i], false), what),
					 errhint("A key-based write cannot change its key columns.")));
	return DirectFunctionCall2(jsonb_concat, key, data);
}

/*
 * Primary key columns of the target, or an error if it has none (for the
 * write function fname).
 */
static int
aw_primary_key(Relation rel, AttrNumber *out, const char *fname)
{
	Oid			pk = aw_primary_key_index(rel);
	Relation	idx;
	int			n;

	if (!OidIsValid(pk))
	{
		aw_refuse_keyed_foreign(rel, fname);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("table \"%s\" has no primary key", RelationGetRelationName(rel)),
				 errhint("Pass conflict_columns naming a unique key.")));
	}
	idx = index_open(pk, AccessShareLock);
	n = idx->rd_index->indnkeyatts;
	for (int i = 0; i < n; i++)
		out[i] = idx->rd_index->indkey.values[i];
	index_close(idx, AccessShareLock);
	return n;
}

/*
 * asyncwrite.upsert(target regclass, data jsonb, conflict_columns text[],
 * transactional boolean): INSERT ... ON CONFLICT (conflict columns, the
 * primary key by default) DO UPDATE SET each other column data names.
 */
Datum
aw_upsert(PG_FUNCTION_ARGS)
{
	Relation	rel;
	AwTarget   *t;
	AttrNumber *keys;
	AttrNumber *set;
	int			nkeys = 0;
	int			nset = 0;
	bool	   *given;
	bool		all_columns;
	Datum		row;

	aw_require_arg(fcinfo, 0, "target");
	aw_require_arg(fcinfo, 1, "data");
	if (aw_enabled)
		aw_check_available();
	rel = aw_open_target(PG_GETARG_OID(0));
	t = aw_target_get(rel);
	keys = palloc(sizeof(AttrNumber) * (RelationGetDescr(rel)->natts + 1));
	set = palloc(sizeof(AttrNumber) * (RelationGetDescr(rel)->natts + 1));
	if (PG_ARGISNULL(2))
		nkeys = aw_primary_key(rel, keys, "upsert");
	else
	{
		Datum	   *names;
		bool	   *nulls;
		int			nnames;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT,
						  &names, &nulls, &nnames);
		for (int i = 0; i < nnames; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("conflict_columns must not contain nulls")));
			keys[nkeys++] = aw_attnum(rel, TextDatumGetCString(names[i]));
		}
	}
	aw_require_unique_key(rel, t, keys, nkeys, true, "upsert");

	/* A role that may insert into only some columns gives only those. */
	all_columns = aw_may_insert_all(rel);
	row = aw_row_from_jsonb_ext(rel, t, aw_arg_jsonb(fcinfo, 1),
								all_columns ? 0 : AW_CONVERT_NO_DEFAULTS, &given);
	for (int i = 0; i < RelationGetDescr(rel)->natts; i++)
		if (given[i] && !aw_attnum_in(keys, nkeys, i + 1))
			set[nset++] = i + 1;
	if (!all_columns)
	{
		AttrNumber *ins = palloc(sizeof(AttrNumber) * (RelationGetDescr(rel)->natts + 1));
		int			nins = aw_given_attnums(given, RelationGetDescr(rel)->natts, ins);

		if (nins > 0)
			aw_check_column_privilege(rel, ACL_INSERT, ins, nins);
	}
	/* DO UPDATE SET c = EXCLUDED.c reads c: the statement needs SELECT. */
	if (nset > 0)
	{
		aw_check_column_privilege(rel, ACL_UPDATE, set, nset);
		aw_check_column_privilege(rel, ACL_SELECT, set, nset);
	}
	/* ON CONFLICT reads the conflict columns. */
	aw_check_column_privilege(rel, ACL_SELECT, keys, nkeys);
	return aw_submit_write(fcinfo, rel, t, row, AW_KIND_UPSERT,
						   aw_colsets_make(keys, nkeys, set, nset),
						   (all_columns ? 0 : AW_FLAG_GIVEN) | aw_call_urgent(fcinfo, 4),
						   aw_call_transactional(fcinfo, 3));
}

/* A key-based write (update, delete, increment) being checked and built. */
typedef struct AwKeyWrite
{
	Relation	rel;
	AwTarget   *t;
	AttrNumber *keys;			/* columns of the key argument */
	int			nkeys;
	AttrNumber *set;			/* columns of the data argument */
	int			nset;
	Datum		key;			/* the key argument, as jsonb */
	Datum		data;			/* the data argument, as jsonb */
} AwKeyWrite;

/*
 * Open the target of a key-based write, and read its key columns (argument
 * 1, a unique key of the target) and, with data_arg >= 0, the columns that
 * argument names (at least one, else the error empty_msg).
 */
static void
aw_key_write_begin(FunctionCallInfo fcinfo, AwKeyWrite *w, const char *fname,
				   const char *empty_msg, int data_arg, const char *data_name,
				   bool for_conflict)
{
	int			natts;

	aw_require_arg(fcinfo, 0, "target");
	aw_require_arg(fcinfo, 1, "key");
	if (data_arg >= 0)
		aw_require_arg(fcinfo, data_arg, data_name);
	if (aw_enabled)
		aw_check_available();
	w->rel = aw_open_target(PG_GETARG_OID(0));
	w->t = aw_target_get(w->rel);
	aw_check_schema_usage(w->rel);
	natts = RelationGetDescr(w->rel)->natts;
	w->keys = palloc(sizeof(AttrNumber) * (natts + 1));
	w->set = palloc(sizeof(AttrNumber) * (natts + 1));
	w->key = aw_arg_jsonb(fcinfo, 1);
	w->nkeys = aw_jsonb_attnums(w->rel, w->key, "key", w->keys);
	aw_require_unique_key(w->rel, w->t, w->keys, w->nkeys, for_conflict, fname);
	w->nset = 0;
	if (data_arg < 0)
		return;
	w->data = aw_arg_jsonb(fcinfo, data_arg);
	w->nset = aw_jsonb_attnums(w->rel, w->data, data_name, w->set);
	if (w->nset == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", empty_msg)));
}

/*
 * The row of a key-based write: the key and (with data_name, what the
 * data argument is called) the data converted together; no key column may
 * be NULL.
 */
static Datum
aw_key_write_row(AwKeyWrite *w, const char *data_name, int options)
{
	Datum		source = w->key;
	Datum		row;

	if (data_name != NULL)
		source = aw_merge_objects(w->rel, source, w->keys, w->nkeys,
								  w->data, w->set, w->nset, data_name);
	row = aw_row_from_jsonb_ext(w->rel, w->t, source, options, NULL);
	aw_require_key_values(w->rel, row, w->keys, w->nkeys);
	return row;
}

/*
 * asyncwrite.update(target regclass, key jsonb, data jsonb, transactional
 * boolean): UPDATE target SET (columns of data) WHERE (key columns) match.
 */
Datum
aw_update(PG_FUNCTION_ARGS)
{
	AwKeyWrite	w;
	Datum		row;

	aw_key_write_begin(fcinfo, &w, "update",
					   "asyncwrite.update() data names no column to set",
					   2, "data", false);
	row = aw_key_write_row(&w, "data", AW_CONVERT_NO_DEFAULTS);
	aw_check_column_privilege(w.rel, ACL_UPDATE, w.set, w.nset);
	aw_check_column_privilege(w.rel, ACL_SELECT, w.keys, w.nkeys);
	return aw_submit_write(fcinfo, w.rel, w.t, row, AW_KIND_UPDATE,
						   aw_colsets_make(w.keys, w.nkeys, w.set, w.nset),
						   aw_call_urgent(fcinfo, 4),
						   aw_call_transactional(fcinfo, 3));
}

/*
 * asyncwrite.delete(target regclass, key jsonb, transactional boolean):
 * DELETE FROM target WHERE (key columns) match.
 */
Datum
aw_delete(PG_FUNCTION_ARGS)
{
	AwKeyWrite	w;
	Datum		row;

	aw_key_write_begin(fcinfo, &w, "delete", NULL, -1, NULL, false);
	row = aw_key_write_row(&w, NULL, AW_CONVERT_NO_DEFAULTS);
	if (pg_class_aclcheck(RelationGetRelid(w.rel), GetUserId(), ACL_DELETE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(w.rel->rd_rel->relkind),
					   RelationGetRelationName(w.rel));
	aw_check_column_privilege(w.rel, ACL_SELECT, w.keys, w.nkeys);
	return aw_submit_write(fcinfo, w.rel, w.t, row, AW_KIND_DELETE,
						   aw_colsets_make(w.keys, w.nkeys, NULL, 0),
						   aw_call_urgent(fcinfo, 3),
						   aw_call_transactional(fcinfo, 2));
}

/*
 * asyncwrite.increment(target regclass, key jsonb, deltas jsonb,
 * transactional boolean): add the deltas to numeric columns of the row with
 * that key, inserting it (defaults plus deltas) when it is missing.
 * Increments of the same key applied together are summed first.
 */
Datum
aw_increment(PG_FUNCTION_ARGS)
{
	AwKeyWrite	w;
	Datum		row;
	bool		all_columns;

	aw_key_write_begin(fcinfo, &w, "increment",
					   "asyncwrite.increment() deltas name no column",
					   2, "deltas", true);
	for (int i = 0; i < w.nset; i++)
	{
		Oid			typid = getBaseType(TupleDescAttr(RelationGetDescr(w.rel), w.set[i] - 1)->atttypid);

		/* Types with both sum() and + in pg_catalog (not oid, reg*). */
		if (typid != INT2OID && typid != INT4OID && typid != INT8OID &&
			typid != NUMERICOID && typid != FLOAT4OID && typid != FLOAT8OID &&
			typid != CASHOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" is of type %s, not a number that can be added to",
							get_attname(RelationGetRelid(w.rel), w.set[i], false),
							format_type_be(typid)),
					 errhint("asyncwrite.increment() adds to smallint, integer, bigint, numeric, real, double precision and money columns.")));
	}
	/* A role that may insert into only some columns gives only those. */
	all_columns = aw_may_insert_all(w.rel);
	row = aw_key_write_row(&w, "deltas",
						   all_columns ? 0 : AW_CONVERT_NO_DEFAULTS);

	/*
	 * A NULL delta makes the sum NULL one by one but is skipped by a summed
	 * batch: refused, so that both give the same.
	 */
	{
		HeapTupleData tuple;

		aw_tuple_over(DatumGetHeapTupleHeader(row), &tuple);
		for (int i = 0; i < w.nset; i++)
			if (heap_attisnull(&tuple, w.set[i], NULL))
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("delta for column \"%s\" is null",
								get_attname(RelationGetRelid(w.rel), w.set[i], false)),
						 errhint("Give each column of the deltas a number to add, or leave the column out.")));
	}
	if (!all_columns)
	{
		aw_check_column_privilege(w.rel, ACL_INSERT, w.keys, w.nkeys);
		aw_check_column_privilege(w.rel, ACL_INSERT, w.set, w.nset);
	}
	aw_check_column_privilege(w.rel, ACL_UPDATE, w.set, w.nset);
	aw_check_column_privilege(w.rel, ACL_SELECT, w.set, w.nset);
	aw_check_column_privilege(w.rel, ACL_SELECT, w.keys, w.nkeys);
	return aw_submit_write(fcinfo, w.rel, w.t, row, AW_KIND_INCREMENT,
						   aw_colsets_make(w.keys, w.nkeys, w.set, w.nset),
						   (all_columns ? 0 : AW_FLAG_GIVEN) | aw_call_urgent(fcinfo, 4),
						   aw_call_transactional(fcinfo, 3));
}
