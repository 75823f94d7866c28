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
#include "commands/trigger.h"
#include "funcapi.h"
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
PG_FUNCTION_INFO_V1(aw_capture);

/* Refuse a NULL argument with a clear error. */
void
aw_require_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/* Check that the caller may use the target's schema, as naming it needs. */
void
aw_check_schema_usage(Relation rel)
{
	AclResult	aclresult = pg_namespace_aclcheck(RelationGetNamespace(rel),
												  GetUserId(), ACL_USAGE);

	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_SCHEMA,
					   get_namespace_name(RelationGetNamespace(rel)));
}

/* Check that the caller may insert every column a queued row fills. */
void
aw_check_insert_privileges(Relation rel)
{
	Oid			userid = GetUserId();
	Oid			relid = RelationGetRelid(rel);
	TupleDesc	desc = RelationGetDescr(rel);

	aw_check_schema_usage(rel);
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

/* aw_open_target() for an insert: with the caller's INSERT privileges. */
static Relation
aw_open_insert_target(Oid relid)
{
	Relation	rel = aw_open_target(relid);

	aw_check_insert_privileges(rel);
	return rel;
}

/* Whether a write is transactional: the call's argument, else the GUC. */
bool
aw_call_transactional(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
		return PG_GETARG_BOOL(argno);
	return aw_transactional;
}

/*
 * Submit a converted write: kept until commit when transactional, queued at
 * once otherwise, or written now when asyncwrite is disabled or the row
 * cannot be queued (on_full = sync, or a transaction holding more than the
 * queue should take).  Returns the write id of a write queued at once, else
 * NULL.  Closes rel (keeping its lock).
 */
Datum
aw_submit_write(FunctionCallInfo fcinfo, Relation rel, AwTarget *t, Datum row,
				uint8 kind, const AwColumnSets *cs, bool transactional)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(row);
	Size		len = HeapTupleHeaderGetDatumLength(td);
	Size		cs_len = cs ? AW_COLSETS_SIZE(cs->nkeys, cs->nset) : 0;
	uint32		fingerprint = aw_target_fingerprint(t);
	uint16		flags = 0;
	uint64		write_id;

	if (kind == AW_KIND_INSERT && aw_target_row_deferred(t, row))
		flags = AW_FLAG_DEFERRED;

	if (aw_enabled && transactional && aw_entry_size(len, cs_len) <= aw_control->capacity / 4)
	{
		if (aw_xact_keep(RelationGetRelid(rel), GetUserId(), fingerprint,
						 kind, flags, td, len, cs, cs_len))
		{
			table_close(rel, NoLock);
			PG_RETURN_NULL();
		}
	}
	else if (aw_enabled && !transactional &&
			 aw_queue_submit(RelationGetRelid(rel), GetUserId(), fingerprint,
							 kind, flags, td, len, cs, cs_len, &write_id))
	{
		aw_xact_note_write_id(write_id);
		table_close(rel, NoLock);
		PG_RETURN_INT64((int64) write_id);
	}
	else if (aw_enabled && transactional && aw_on_full != AW_ON_FULL_SYNC)
		(void) aw_queue_submit(RelationGetRelid(rel), GetUserId(), fingerprint,
							   kind, flags, td, len, cs, cs_len,
							   &write_id);	/* raises "too large" */
	aw_apply_sync(rel, row, kind, flags, cs);
	table_close(rel, NoLock);
	PG_RETURN_NULL();
}

/* Submit an insert. */
static Datum
aw_submit_row(FunctionCallInfo fcinfo, Relation rel, AwTarget *t, Datum row,
			  bool transactional)
{
	return aw_submit_write(fcinfo, rel, t, row, AW_KIND_INSERT, NULL, transactional);
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
	rel = aw_open_insert_target(PG_GETARG_OID(0));
	t = aw_target_get(rel);
	row = aw_row_from_jsonb(rel, t, PG_GETARG_DATUM(1), AW_CONVERT_INSERT);
	return aw_submit_row(fcinfo, rel, t, row, aw_call_transactional(fcinfo, 2));
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
	rel = aw_open_insert_target(PG_GETARG_OID(0));
	t = aw_target_get(rel);
	row = aw_row_from_jsonb(rel, t, jsonb, AW_CONVERT_INSERT);
	return aw_submit_row(fcinfo, rel, t, row, aw_call_transactional(fcinfo, 2));
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
	rel = aw_open_insert_target(PG_GETARG_OID(0));
	t = aw_target_get(rel);
	row = aw_row_from_record(rel, t, PG_GETARG_DATUM(1), false, NULL, NULL);
	return aw_submit_row(fcinfo, rel, t, row, aw_call_transactional(fcinfo, 2));
}

/*
 * The target table named by capture()'s argument.  An unqualified name is
 * looked up first in the schema of the table the trigger is on, so that it
 * resolves the same in any session (the apply worker's search_path holds
 * only pg_catalog), then through the search_path.
 */
static Oid
aw_capture_target(const char *name, Relation source)
{
	if (strchr(name, '.') == NULL && strchr(name, '"') == NULL)
	{
		Oid			relid = get_relname_relid(name, RelationGetNamespace(source));

		if (OidIsValid(relid))
			return relid;
	}
	return DatumGetObjectId(DirectFunctionCall1(regclassin, CStringGetDatum(name)));
}

/*
 * asyncwrite.capture(target [, op_column]): a row trigger that queues the
 * row (NEW, or OLD for DELETE) into the target table, matching columns by
 * name (source columns the target lacks are left out) and storing TG_OP in
 * op_column if given.  Transactional like any other write.
 */
Datum
aw_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	HeapTuple	tuple;
	HeapTuple	result;
	const char *op;
	Oid			target;
	Relation	rel;
	AwTarget   *t;
	Datum		row;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("asyncwrite.capture() must be called as a trigger")));
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("asyncwrite.capture() must be fired FOR EACH ROW")));
	trigger = trigdata->tg_trigger;
	if (trigger->tgnargs < 1 || trigger->tgnargs > 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("asyncwrite.capture() takes the target table and optionally an operation column"),
				 errhint("CREATE TRIGGER ... EXECUTE FUNCTION asyncwrite.capture('audit_table', 'op')")));

	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		op = "DELETE";
		tuple = result = trigdata->tg_trigtuple;
	}
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		op = "UPDATE";
		tuple = result = trigdata->tg_newtuple;
	}
	else
	{
		op = "INSERT";
		tuple = result = trigdata->tg_trigtuple;
	}

	if (aw_enabled)
		aw_check_available();
	target = aw_capture_target(trigger->tgargs[0], trigdata->tg_relation);
	rel = aw_open_insert_target(target);
	t = aw_target_get(rel);
	row = aw_row_from_record(rel, t,
							 heap_copy_tuple_as_datum(tuple, RelationGetDescr(trigdata->tg_relation)),
							 true, trigger->tgnargs == 2 ? trigger->tgargs[1] : NULL, op);
	(void) aw_submit_row(fcinfo, rel, t, row, aw_transactional);
	fcinfo->isnull = false;		/* a trigger returns a tuple pointer, or none */

	/* A BEFORE trigger lets the row through unchanged. */
	if (TRIGGER_FIRED_AFTER(trigdata->tg_event))
		return PointerGetDatum(NULL);
	return PointerGetDatum(result);
}
