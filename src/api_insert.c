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
#include "catalog/objectaddress.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonfuncs.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "api.h"
#include "compat.h"
#include "submit.h"

PG_FUNCTION_INFO_V1(aw_insert_jsonb);
PG_FUNCTION_INFO_V1(aw_insert_record);
PG_FUNCTION_INFO_V1(aw_insert_text);
PG_FUNCTION_INFO_V1(aw_capture);

/*
 * aw_open_target() for an insert, checking the caller's INSERT privileges:
 * *convert_options gets AW_CONVERT_GIVEN_ONLY when the caller may insert
 * into only some columns (then aw_submit_row checks the columns a write
 * gives, and the others take their defaults when it is applied).
 */
static Relation
aw_open_insert_target(Oid relid, int *convert_options)
{
	Relation	rel = aw_open_target(relid);

	*convert_options = aw_may_insert_all(rel) ? 0 : AW_CONVERT_GIVEN_ONLY;
	return rel;
}

/*
 * Describe an insert of the caller's role.  With given
 * (AW_CONVERT_GIVEN_ONLY), the row holds only the columns given marks: each
 * needs the caller's INSERT privilege.
 */
static void
aw_insert_spec(Relation rel, AwTarget *t, Datum row, const bool *given,
			   uint32 flags, AwWriteSpec *w)
{
	AttrNumber *attnums;
	int			n;

	if (given == NULL)
	{
		aw_write_spec_make(w, rel, t, row, AW_KIND_INSERT, NULL, flags);
		return;
	}
	attnums = palloc(sizeof(AttrNumber) * Max(RelationGetDescr(rel)->natts, 1));
	n = aw_given_attnums(given, RelationGetDescr(rel)->natts, attnums);
	if (n > 0)
		aw_check_column_privilege(rel, ACL_INSERT, attnums, n);
	/* Every column its default: INSERT then needs INSERT on some column. */
	else if (
			 pg_attribute_aclcheck_all(RelationGetRelid(rel), GetUserId(), ACL_INSERT,
									   ACLMASK_ANY) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(rel->rd_rel->relkind),
					   RelationGetRelationName(rel));
	aw_write_spec_make(w, rel, t, row, AW_KIND_INSERT,
					   aw_colsets_make(NULL, 0, attnums, n), flags | AW_FLAG_GIVEN);
}

/* Submit one insert (see aw_insert_spec). */
static Datum
aw_submit_row(FunctionCallInfo fcinfo, Relation rel, AwTarget *t, Datum row,
			  const bool *given, uint32 flags, bool transactional)
{
	AwWriteSpec w;

	aw_insert_spec(rel, t, row, given, flags, &w);
	return aw_submit_writes(fcinfo, rel, 1, &w, transactional);
}

/*
 * The type of argument argno as the call passed it (after implicit casts),
 * else as the function declares it.
 */
static Oid
aw_argtype(FunctionCallInfo fcinfo, int argno)
{
	Oid			typid = get_fn_expr_argtype(fcinfo->flinfo, argno);
	Oid		   *argtypes;
	int			nargs;

	if (OidIsValid(typid))
		return typid;
	(void) get_func_signature(fcinfo->flinfo->fn_oid, &argtypes, &nargs);
	return argno < nargs ? argtypes[argno] : InvalidOid;
}

/*
 * Whether a JSON argument is jsonb (else it is JSON text: json, text or
 * varchar).  The write functions take their JSON arguments as jsonb, json
 * or text (so that a varchar, or a parameter of no type, works too), every
 * overload with one C function: the argument's type says how to read it.
 */
static bool
aw_arg_is_jsonb(FunctionCallInfo fcinfo, int argno)
{
	Oid			typid = aw_argtype(fcinfo, argno);

	if (typid == JSONBOID)
		return true;
	if (typid == JSONOID || typid == TEXTOID || typid == VARCHAROID)
		return false;
	typid = getBaseType(typid);
	if (typid == JSONBOID)
		return true;
	if (typid != JSONOID && typid != TEXTOID && typid != VARCHAROID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("asyncwrite cannot read JSON from type %s",
						format_type_be(typid)),
				 errhint("Pass jsonb, json or text.")));
	return false;
}

/* JSON text (json, text or varchar) read as jsonb, as its cast reads it. */
static Datum
aw_text_jsonb(text *txt)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(text_to_cstring(txt)));
}

/* A JSON argument (see aw_arg_is_jsonb) as jsonb. */
Datum
aw_arg_jsonb(FunctionCallInfo fcinfo, int argno)
{
	if (aw_arg_is_jsonb(fcinfo, argno))
		return PG_GETARG_DATUM(argno);
	return aw_text_jsonb(PG_GETARG_TEXT_PP(argno));
}

/* Where in the array of an insert() of many rows an error happened. */
typedef struct AwArrayPosition
{
	int			index;
	bool		json;			/* JSON arrays count from 0, SQL arrays from 1 */
} AwArrayPosition;

/* Error context callback: name the array element being converted. */
static void
aw_array_error_callback(void *arg)
{
	AwArrayPosition *pos = (AwArrayPosition *) arg;

	if (pos->json)
		errcontext("element %d of the JSON array (counting from 0)", pos->index);
	else
		errcontext("element %d of the array (counting from 1)", pos->index);
}

/*
 * The rows of an insert() of many, converted one element at a time: each
 * in a memory context reset after it (converting an array of thousands at
 * once would take fresh memory, whose first touch costs more than the
 * conversion), then kept as a write until all are submitted together.
 */
typedef struct AwInsertMany
{
	Relation	rel;
	AwTarget   *t;
	int			options;		/* AW_CONVERT_GIVEN_ONLY or 0 */
	uint32		flags;			/* of every write */
	AwWriteSpec *w;
	int			n;
	int			size;
	MemoryContext cxt;			/* the writes' */
	MemoryContext elemcxt;		/* one element's conversion */
	AwArrayPosition pos;
	ErrorContextCallback errcb;
	JsonLexContext *lex;		/* JSON text being split into elements */
	const char *elem_start;		/* where its current element starts */
} AwInsertMany;

/* Start converting the elements of a JSON or SQL array. */
static void
aw_many_begin(AwInsertMany *m, FunctionCallInfo fcinfo, Relation rel,
			  AwTarget *t, int options, int nhint, bool json)
{
	m->rel = rel;
	m->t = t;
	m->options = options;
	m->flags = aw_call_urgent(fcinfo, 3);
	m->size = Max(nhint, 16);
	m->w = palloc(sizeof(AwWriteSpec) * m->size);
	m->n = 0;
	m->cxt = CurrentMemoryContext;
	m->elemcxt = AllocSetContextCreate(CurrentMemoryContext,
									   "asyncwrite array element",
									   ALLOCSET_DEFAULT_SIZES);
	m->pos.index = json ? 0 : 1;
	m->pos.json = json;
	m->errcb.callback = aw_array_error_callback;
	m->errcb.arg = &m->pos;
	m->errcb.previous = error_context_stack;
	error_context_stack = &m->errcb;
	m->lex = NULL;
}

/*
 * Convert one element (a jsonb value, else rec, a composite) in the
 * element context; keep its row and write description in the writes'.
 */
static void
aw_many_add(AwInsertMany *m, Datum jsonb, Datum rec)
{
	MemoryContext old = MemoryContextSwitchTo(m->elemcxt);
	bool	   *given;
	Datum		row;

	if (rec != (Datum) 0)
		row = aw_row_from_record(m->rel, m->t, rec, false, NULL, NULL,
								 m->options | AW_CONVERT_EXTRA_FIELDS, &given);
	else
		row = aw_row_from_jsonb_ext(m->rel, m->t, jsonb,
									AW_CONVERT_INSERT | m->options, &given);
	MemoryContextSwitchTo(m->cxt);
	if (m->n == m->size)
	{
		m->size *= 2;
		m->w = repalloc(m->w, sizeof(AwWriteSpec) * m->size);
	}
	aw_insert_spec(m->rel, m->t, datumCopy(row, false, -1),
				   m->options ? given : NULL, m->flags, &m->w[m->n]);
	m->n++;
	m->pos.index++;
	MemoryContextSwitchTo(old);
	MemoryContextReset(m->elemcxt);
}

/* Submit every converted element together (see aw_submit_writes). */
static Datum
aw_many_submit(AwInsertMany *m, FunctionCallInfo fcinfo, bool transactional)
{
	error_context_stack = m->errcb.previous;
	MemoryContextDelete(m->elemcxt);
	return aw_submit_writes(fcinfo, m->rel, m->n, m->w, transactional);
}

/* JSON parser callback: a top-level element of the array starts. */
static AW_JSON_ACTION
aw_many_element_start(void *state, bool isnull)
{
	AwInsertMany *m = (AwInsertMany *) state;

	if (m->lex->lex_level == 1)
		m->elem_start = m->lex->token_start;
	return AW_JSON_ACTION_DONE;
}

/* JSON parser callback: a top-level element ended: convert its text. */
static AW_JSON_ACTION
aw_many_element_end(void *state, bool isnull)
{
	AwInsertMany *m = (AwInsertMany *) state;
	MemoryContext old;
	Datum		jsonb;

	if (m->lex->lex_level != 1)
		return AW_JSON_ACTION_DONE;
	old = MemoryContextSwitchTo(m->elemcxt);
	jsonb = DirectFunctionCall1(jsonb_in,
								CStringGetDatum(pnstrdup(m->elem_start,
														 m->lex->prev_token_terminator - m->elem_start)));
	MemoryContextSwitchTo(old);
	aw_many_add(m, jsonb, (Datum) 0);
	return AW_JSON_ACTION_DONE;
}

/* Whether JSON text is an array (its first non-blank character). */
static bool
aw_json_text_is_array(text *txt)
{
	const char *p = VARDATA_ANY(txt);
	const char *end = p + VARSIZE_ANY_EXHDR(txt);

	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p < end && *p == '[';
}

/*
 * insert() of a JSON array of objects given as JSON text: the text is split
 * into its elements by the JSON parser, each read as jsonb on its own.
 */
static Datum
aw_insert_json_text_array(FunctionCallInfo fcinfo, Relation rel, AwTarget *t,
						  text *txt, int options, bool transactional)
{
	AwInsertMany m;
	JsonSemAction sem = {0};

	aw_many_begin(&m, fcinfo, rel, t, options, 0, true);
	m.lex = aw_json_lexer(VARDATA_ANY(txt), VARSIZE_ANY_EXHDR(txt));
	sem.semstate = &m;
	sem.array_element_start = aw_many_element_start;
	sem.array_element_end = aw_many_element_end;
	pg_parse_json_or_ereport(m.lex, &sem);
	return aw_many_submit(&m, fcinfo, transactional);
}

/*
 * insert() of a jsonb array of objects: every row is converted and checked
 * first, then all are submitted as one (a block of consecutive ids when
 * queued at once).
 */
static Datum
aw_insert_json_array(FunctionCallInfo fcinfo, Relation rel, AwTarget *t,
					 Jsonb *jb, int options, bool transactional)
{
	AwInsertMany m;
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	aw_many_begin(&m, fcinfo, rel, t, options, JB_ROOT_COUNT(jb), true);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_ELEM)
			aw_many_add(&m, JsonbPGetDatum(JsonbValueToJsonb(&v)), (Datum) 0);
	}
	return aw_many_submit(&m, fcinfo, transactional);
}

/*
 * asyncwrite.insert(target regclass, data jsonb | json | text): a JSON
 * object is one row, a JSON array of objects many.  A string literal is
 * read as JSON, so that insert('t', '{"a": 1}') needs no cast.
 */
Datum
aw_insert_jsonb(PG_FUNCTION_ARGS)
{
	Relation	rel;
	AwTarget   *t;
	Datum		data;
	Jsonb	   *jb;
	Datum		row;
	int			options;
	bool	   *given;

	aw_require_arg(fcinfo, 0, "target");
	aw_require_arg(fcinfo, 1, "data");
	if (aw_enabled)
		aw_check_available();
	if (aw_arg_is_jsonb(fcinfo, 1))
		data = PG_GETARG_DATUM(1);
	else
	{
		/* JSON text: an array is split, not read as jsonb whole. */
		text	   *txt = PG_GETARG_TEXT_PP(1);

		if (aw_json_text_is_array(txt))
		{
			rel = aw_open_insert_target(PG_GETARG_OID(0), &options);
			return aw_insert_json_text_array(fcinfo, rel, aw_target_get(rel),
											 txt, options,
											 aw_call_transactional(fcinfo, 2));
		}
		data = aw_text_jsonb(txt);
	}
	rel = aw_open_insert_target(PG_GETARG_OID(0), &options);
	t = aw_target_get(rel);
	jb = DatumGetJsonbP(data);
	if (JB_ROOT_IS_ARRAY(jb) && !JB_ROOT_IS_SCALAR(jb))
		return aw_insert_json_array(fcinfo, rel, t, jb, options,
									aw_call_transactional(fcinfo, 2));
	row = aw_row_from_jsonb_ext(rel, t, PointerGetDatum(jb),
								AW_CONVERT_INSERT | options, &given);
	return aw_submit_row(fcinfo, rel, t, row, options ? given : NULL,
						 aw_call_urgent(fcinfo, 3),
						 aw_call_transactional(fcinfo, 2));
}

/* asyncwrite.insert(target regclass, data text) of version 1.0. */
Datum
aw_insert_text(PG_FUNCTION_ARGS)
{
	return aw_insert_jsonb(fcinfo);
}

/*
 * asyncwrite.insert(target regclass, rec anyelement): a composite value,
 * or an array of them (many rows).  Fields are matched to columns by name;
 * fields the target lacks are left out, as capture() leaves them out.
 */
Datum
aw_insert_record(PG_FUNCTION_ARGS)
{
	Oid			argtype = get_fn_expr_argtype(fcinfo->flinfo, 1);
	Oid			elemtype = get_element_type(argtype);
	Relation	rel;
	AwTarget   *t;
	Datum		row;
	int			options;
	bool	   *given;
	bool		transactional = aw_call_transactional(fcinfo, 2);

	aw_require_arg(fcinfo, 0, "target");
	aw_require_arg(fcinfo, 1, "row");
	if (!type_is_rowtype(argtype) &&
		!(OidIsValid(elemtype) && type_is_rowtype(elemtype)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("asyncwrite.insert() needs a jsonb object or a composite value, not type %s",
						format_type_be(argtype)),
				 errhint("Pass ROW(...)::table_name, a table row, an array of them, or a jsonb object.")));
	if (aw_enabled)
		aw_check_available();
	rel = aw_open_insert_target(PG_GETARG_OID(0), &options);
	t = aw_target_get(rel);
	if (OidIsValid(elemtype))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
		int16		typlen;
		bool		typbyval;
		char		typalign;
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		AwInsertMany m;

		get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
		deconstruct_array(arr, elemtype, typlen, typbyval, typalign,
						  &elems, &nulls, &n);
		aw_many_begin(&m, fcinfo, rel, t, options, n, false);
		for (int i = 0; i < n; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("row must not be null")));
			aw_many_add(&m, (Datum) 0, elems[i]);
		}
		return aw_many_submit(&m, fcinfo, transactional);
	}
	row = aw_row_from_record(rel, t, PG_GETARG_DATUM(1), false, NULL, NULL,
							 options | AW_CONVERT_EXTRA_FIELDS, &given);
	return aw_submit_row(fcinfo, rel, t, row, options ? given : NULL,
						 aw_call_urgent(fcinfo, 3), transactional);
}

/*
 * capture()'s target of each trigger, by trigger OID (AwCaptureTarget), in
 * a memory context of its own.  A syscache callback only marks it stale
 * (it may run in the middle of a lookup); it is emptied before the next
 * lookup.
 */
static HTAB *aw_capture_targets = NULL;
static MemoryContext aw_capture_cxt = NULL;
static bool aw_capture_stale = false;

typedef struct AwCaptureTarget
{
	Oid			tgoid;			/* hash key */
	Oid			source_nsp;		/* schema of the trigger's table then */
	char	   *name;			/* the trigger's argument then */
	Oid			relid;
} AwCaptureTarget;

/* A table or schema was created, dropped or renamed: resolve afresh. */
static void
aw_capture_targets_reset(Datum arg, int cacheid, uint32 hashvalue)
{
	aw_capture_stale = true;
}

/*
 * The target table named by capture()'s first argument, read as an SQL
 * name (folded to lower case unless double-quoted).  An unqualified name is
 * a table in the schema of the table the trigger is on; the session's
 * search_path is never used, so no session can divert the rows elsewhere.
 * Resolved once per trigger (and argument: CREATE OR REPLACE TRIGGER keeps
 * the OID), again after any table or schema is created, dropped or
 * renamed.
 */
static Oid
aw_capture_target(Trigger *trigger, Relation source)
{
	List	   *names;
	RangeVar   *rv;
	Oid			nspid;
	Oid			relid;
	AwCaptureTarget *entry;
	bool		found;

	if (aw_capture_cxt == NULL)
	{
		aw_capture_cxt = AllocSetContextCreate(CacheMemoryContext,
											   "asyncwrite capture targets",
											   ALLOCSET_SMALL_SIZES);
		CacheRegisterSyscacheCallback(RELNAMENSP, aw_capture_targets_reset, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACENAME, aw_capture_targets_reset, (Datum) 0);
	}
	if (aw_capture_stale || aw_capture_targets == NULL)
	{
		HASHCTL		ctl;

		MemoryContextReset(aw_capture_cxt);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(AwCaptureTarget);
		ctl.hcxt = aw_capture_cxt;
		aw_capture_targets = hash_create("asyncwrite capture targets", 16, &ctl,
										 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		aw_capture_stale = false;
	}
	entry = hash_search(aw_capture_targets, &trigger->tgoid, HASH_FIND, NULL);
	if (entry != NULL && entry->source_nsp == RelationGetNamespace(source) &&
		strcmp(entry->name, trigger->tgargs[0]) == 0)
		return entry->relid;

#if PG_VERSION_NUM >= 160000
	names = stringToQualifiedNameList(trigger->tgargs[0], NULL);
#else
	names = stringToQualifiedNameList(trigger->tgargs[0]);
#endif
	rv = makeRangeVarFromNameList(names);
	if (rv->catalogname != NULL &&
		strcmp(rv->catalogname, get_database_name(MyDatabaseId)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cross-database references are not implemented: %s",
						trigger->tgargs[0])));
	nspid = rv->schemaname ? get_namespace_oid(rv->schemaname, false) :
		RelationGetNamespace(source);
	relid = get_relname_relid(rv->relname, nspid);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist",
						get_namespace_name(nspid), rv->relname),
				 errdetail("Trigger \"%s\" on table \"%s\" names \"%s\"; an unqualified name is looked up in the schema of the table the trigger is on.",
						   trigger->tgname, RelationGetRelationName(source),
						   trigger->tgargs[0]),
				 errhint("Create the audit table, or name its schema in CREATE TRIGGER; a mixed-case name needs double quotes.")));

	/* The lookups above may have marked the cache stale: keep it for later. */
	entry = hash_search(aw_capture_targets, &trigger->tgoid, HASH_ENTER, &found);
	entry->source_nsp = RelationGetNamespace(source);
	entry->name = MemoryContextStrdup(aw_capture_cxt, trigger->tgargs[0]);
	entry->relid = relid;
	return relid;
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
	int			options;
	bool	   *given;

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
	target = aw_capture_target(trigger, trigdata->tg_relation);
	rel = aw_open_insert_target(target, &options);
	t = aw_target_get(rel);
	row = aw_row_from_record(rel, t,
							 heap_copy_tuple_as_datum(tuple, RelationGetDescr(trigdata->tg_relation)),
							 true, trigger->tgnargs == 2 ? trigger->tgargs[1] : NULL, op,
							 options, &given);
	(void) aw_submit_row(fcinfo, rel, t, row, options ? given : NULL,
						 aw_urgent ? AW_FLAG_URGENT : 0, aw_transactional);
	fcinfo->isnull = false;		/* a trigger returns a tuple pointer, or none */

	/* A BEFORE trigger lets the row through unchanged. */
	if (TRIGGER_FIRED_AFTER(trigdata->tg_event))
		return PointerGetDatum(NULL);
	return PointerGetDatum(result);
}
