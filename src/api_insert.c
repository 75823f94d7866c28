/*-------------------------------------------------------------------------
 *
 * api_insert.c
 *		asyncwrite.insert() and the capture() trigger: check the target and
 *		the caller's privileges, convert the row in the caller's session,
 *		and submit it (submit.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "api.h"
#include "submit.h"

PG_FUNCTION_INFO_V1(aw_insert_jsonb);
PG_FUNCTION_INFO_V1(aw_insert_record);
PG_FUNCTION_INFO_V1(aw_insert_text);
PG_FUNCTION_INFO_V1(aw_capture);

/* aw_open_target() for an insert: with the caller's INSERT privileges. */
static Relation
aw_open_insert_target(Oid relid)
{
	Relation	rel = aw_open_target(relid);

	aw_check_insert_privileges(rel);
	return rel;
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
