/*-------------------------------------------------------------------------
 *
 * convert.c
 *		Turn the arguments of the write functions (a jsonb object or a
 *		composite value) into a row of the target table, in the caller's
 *		session: values go through the column types' input functions (so the
 *		caller's DateStyle and TimeZone apply) and left-out columns get their
 *		DEFAULT evaluated now.
 *
 * The per-backend target cache keeps what is needed per table (input
 * functions, planned default expressions, the row-layout fingerprint) and is
 * invalidated by relcache invalidations.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "convert.h"

/* What the cache knows about one column of a target. */
typedef struct AwColumn
{
	const char *name;
	Oid			typid;
	int32		typmod;
	Oid			typioparam;
	Oid			elemtype;		/* element type when an array, else 0 */
	FmgrInfo	input;
	bool		dropped;
	char		generated;		/* attgenerated */
	char		identity;		/* attidentity */
	bool		default_built;
	Oid			default_seq;	/* sequence of a DEFAULT left to the worker */
	bool		default_seq_free;	/* identity: drawn without a privilege
									 * check */
	bool		is_domain;		/* typid is a domain */
	void	   *domain_extra;	/* domain_check()'s cache, in the target's */
	bool		elem_is_domain; /* an array of a domain: elemtype */
	int16		elem_len;
	bool		elem_byval;
	char		elem_align;
	void	   *elem_domain_extra;	/* domain_check()'s cache for elements */
	Expr	   *default_expr;	/* planned DEFAULT, NULL when none */
	ExprState  *default_state;	/* its executable state, kept with the target */
} AwColumn;

/* The per-backend cache entry of one target table. */
struct AwTarget
{
	Oid			relid;			/* hash key */
	bool		valid;
	MemoryContext cxt;
	uint32		fingerprint;
	int			natts;
	AwColumn   *cols;
	bool		has_domains;	/* some column's type is a domain */
	List	   *unique_keys;	/* key column sets found unique (AwKnownKey) */
	uint64		last_used;		/* aw_target_clock when last used */
};

/*
 * Targets kept at most per backend: the least recently used one goes when
 * another is added (entries of dropped tables go that way too).
 */
#define AW_MAX_TARGETS	256

/* A key column set already checked to be a unique key of the target. */
typedef struct AwKnownKey
{
	bool		for_conflict;
	int			nkeys;
	AttrNumber	attnums[FLEXIBLE_ARRAY_MEMBER];
} AwKnownKey;

static void aw_build_default(Relation rel, AwTarget *t, int i);

static HTAB *aw_targets = NULL;
static uint64 aw_target_clock = 0;

/* Column and target named in the context line of conversion errors. */
typedef struct AwConvertContext
{
	Relation	rel;
	const char *column;
} AwConvertContext;

/* Relcache invalidation: forget what we know of the table (or of all). */
static void
aw_target_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	AwTarget   *t;

	if (aw_targets == NULL)
		return;
	if (OidIsValid(relid))
	{
		t = hash_search(aw_targets, &relid, HASH_FIND, NULL);
		if (t != NULL)
			t->valid = false;
		return;
	}
	hash_seq_init(&status, aw_targets);
	while ((t = hash_seq_search(&status)) != NULL)
		t->valid = false;
}

/*
 * A hash of the layout of the first natts columns, to detect DDL between
 * enqueue and apply.  A row queued before columns were appended matches the
 * prefix of the new layout.  Keyed with the server's secret aw_layout_seed:
 * a user who could find two layouts with the same fingerprint could have a
 * queued row read with the wrong column types.
 */
uint32
aw_tupdesc_fingerprint_prefix(TupleDesc desc, int natts)
{
	uint32	   *buf = palloc(sizeof(uint32) * (1 + 5 * Max(natts, 1)));
	int			n = 0;
	uint64		h;

	buf[n++] = (uint32) natts;
	for (int i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		buf[n++] = (uint32) att->atttypid;
		buf[n++] = (uint32) att->atttypmod;
		buf[n++] = (uint32) att->attlen;
		buf[n++] = (uint32) att->attisdropped;
		buf[n++] = (uint32) att->attgenerated;
	}
	h = hash_bytes_extended((const unsigned char *) buf, sizeof(uint32) * n,
							aw_layout_seed);
	pfree(buf);
	return (uint32) (h ^ (h >> 32));
}

/* The layout hash of a whole row type. */
uint32
aw_tupdesc_fingerprint(TupleDesc desc)
{
	return aw_tupdesc_fingerprint_prefix(desc, desc->natts);
}

/* Fill a cache entry from the open relation. */
static void
aw_target_build(AwTarget *t, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext old;

	if (t->cxt != NULL)
		MemoryContextDelete(t->cxt);
	t->cxt = AllocSetContextCreate(CacheMemoryContext, "asyncwrite target",
								   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(t->cxt);
	t->natts = desc->natts;
	t->unique_keys = NIL;
	t->has_domains = false;
	t->fingerprint = aw_tupdesc_fingerprint(desc);
	t->cols = palloc0(sizeof(AwColumn) * Max(desc->natts, 1));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		AwColumn   *c = &t->cols[i];
		Oid			infunc;

		c->name = pstrdup(NameStr(att->attname));
		c->dropped = att->attisdropped;
		c->generated = att->attgenerated;
		c->identity = att->attidentity;
		if (c->dropped)
			continue;
		c->typid = att->atttypid;
		c->typmod = att->atttypmod;
		c->elemtype = get_element_type(getBaseType(att->atttypid));
		c->is_domain = (get_typtype(att->atttypid) == TYPTYPE_DOMAIN);
		c->elem_is_domain = OidIsValid(c->elemtype) &&
			get_typtype(c->elemtype) == TYPTYPE_DOMAIN;
		if (c->elem_is_domain)
			get_typlenbyvalalign(c->elemtype, &c->elem_len, &c->elem_byval,
								 &c->elem_align);
		t->has_domains |= c->is_domain || c->elem_is_domain;
		getTypeInputInfo(att->atttypid, &infunc, &c->typioparam);
		fmgr_info_cxt(infunc, &c->input, t->cxt);
	}
	MemoryContextSwitchTo(old);
	t->valid = true;
}

/*
 * Keep at most AW_MAX_TARGETS targets: forget one of a dropped table, else
 * the least recently used one.
 * The one being added was used last, and one a caller still uses (a
 * default that queues a write to another table nests) just before it.
 */
static void
aw_target_evict(void)
{
	HASH_SEQ_STATUS status;
	AwTarget   *t;
	AwTarget   *oldest = NULL;

	if (hash_get_num_entries(aw_targets) <= AW_MAX_TARGETS)
		return;
	/* A target of a dropped table first, else the least recently used. */
	hash_seq_init(&status, aw_targets);
	while ((t = hash_seq_search(&status)) != NULL)
	{
		if (!t->valid && t->cxt != NULL &&
			!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(t->relid)))
		{
			oldest = t;
			hash_seq_term(&status);
			break;
		}
		if (oldest == NULL || t->last_used < oldest->last_used)
			oldest = t;
	}
	if (oldest->cxt != NULL)
		MemoryContextDelete(oldest->cxt);
	(void) hash_search(aw_targets, &oldest->relid, HASH_REMOVE, NULL);
}

/* The cache entry of an open target relation, built or rebuilt as needed. */
AwTarget *
aw_target_get(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	AwTarget   *t;
	bool		found;

	if (aw_targets == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(AwTarget);
		ctl.hcxt = CacheMemoryContext;
		aw_targets = hash_create("asyncwrite targets", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(aw_target_invalidate, (Datum) 0);
	}
	t = hash_search(aw_targets, &relid, HASH_ENTER, &found);
	t->last_used = ++aw_target_clock;
	if (!found)
	{
		t->cxt = NULL;
		t->valid = false;
		aw_target_evict();
	}
	if (!t->valid)
		aw_target_build(t, rel);
	return t;
}

/*
 * Whether an insert's converted row left a sequence default to the worker:
 * only those columns can hold NULL once converted (aw_defer_default).
 */
bool
aw_target_row_deferred(AwTarget *t, Datum row)
{
	HeapTupleData tuple;

	aw_tuple_over(DatumGetHeapTupleHeader(row), &tuple);
	for (int i = 0; i < t->natts; i++)
		if (t->cols[i].default_built && OidIsValid(t->cols[i].default_seq) &&
			heap_attisnull(&tuple, i + 1, NULL))
			return true;
	return false;
}

/* Whether some column of the target is of a domain type. */
bool
aw_target_has_domains(AwTarget *t)
{
	return t->has_domains;
}

/*
 * Check a queued row's values against their columns' domain constraints as
 * they are now, as an INSERT now would (an ALTER DOMAIN may have added one
 * since the call): 23514 or 23502 if one fails.  Only the columns in
 * attnums[0..n) if attnums is given.  In a row that left sequence defaults
 * to the worker (deferred), a NULL there is not a value yet: skipped.
 */
void
aw_target_check_domains(AwTarget *t, Relation rel, Datum row,
						const AttrNumber *attnums, int n, bool deferred)
{
	HeapTupleData tuple;
	TupleDesc	desc = RelationGetDescr(rel);

	if (!t->has_domains)
		return;
	aw_tuple_over(DatumGetHeapTupleHeader(row), &tuple);
	for (int i = 0; i < t->natts && i < (int) HeapTupleHeaderGetNatts(tuple.t_data); i++)
	{
		AwColumn   *c = &t->cols[i];
		Datum		value;
		bool		isnull;

		if (!(c->is_domain || c->elem_is_domain) || c->dropped || c->generated ||
			(attnums != NULL && !aw_attnum_in(attnums, n, i + 1)))
			continue;
		value = heap_getattr(&tuple, i + 1, desc, &isnull);
		if (c->elem_is_domain && !isnull)
		{
			/* An array of a domain: each element, as the array's input does. */
			Datum	   *elems;
			bool	   *enulls;
			int			nelems;

			deconstruct_array(DatumGetArrayTypeP(value), c->elemtype,
							  c->elem_len, c->elem_byval, c->elem_align,
							  &elems, &enulls, &nelems);
			for (int e = 0; e < nelems; e++)
				domain_check(elems[e], enulls[e], c->elemtype,
							 &c->elem_domain_extra, t->cxt);
		}
		if (!c->is_domain)
			continue;
		if (isnull && deferred)
		{
			aw_build_default(rel, t, i);
			if (OidIsValid(c->default_seq))
				continue;
		}
		domain_check(value, isnull, c->typid, &c->domain_extra, t->cxt);
	}
}

/* The row-layout fingerprint of a target. */
uint32
aw_target_fingerprint(AwTarget *t)
{
	return t->fingerprint;
}

/* Error context callback naming the column being converted. */
static void
aw_convert_error_callback(void *arg)
{
	AwConvertContext *ctx = (AwConvertContext *) arg;

	if (ctx->column != NULL)
		errcontext("converting column \"%s\" of table \"%s\"",
				   ctx->column, RelationGetRelationName(ctx->rel));
}

/* Index of the column with this name, or -1. */
static int
aw_column_index(AwTarget *t, const char *name)
{
	for (int i = 0; i < t->natts; i++)
	{
		if (!t->cols[i].dropped && strcmp(t->cols[i].name, name) == 0)
			return i;
	}
	return -1;
}

/* Raise the error for a key or field that names no column. */
static void
aw_unknown_column(Relation rel, const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" of relation \"%s\" does not exist",
					name, RelationGetRelationName(rel)),
			 errhint("Each key of the data must name a column of the target table.")));
}

/* Refuse an explicit value for a column that takes none. */
static void
aw_check_assignable(Relation rel, AwColumn *c)
{
	if (c->generated)
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("cannot insert a non-DEFAULT value into column \"%s\"", c->name),
				 errdetail("Column \"%s\" of relation \"%s\" is a generated column.",
						   c->name, RelationGetRelationName(rel)),
				 errhint("Leave the column out: its value is computed when the row is applied.")));
	if (c->identity == ATTRIBUTE_IDENTITY_ALWAYS)
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("cannot insert a non-DEFAULT value into column \"%s\"", c->name),
				 errdetail("Column \"%s\" of relation \"%s\" is an identity column defined as GENERATED ALWAYS.",
						   c->name, RelationGetRelationName(rel)),
				 errhint("Leave the column out to use its next identity value.")));
}

/* Append a JSON scalar or container as an element of an array literal. */
static void
			aw_append_array_literal(StringInfo buf, JsonbValue *v);

/* Append a string as a double-quoted array element. */
static void
aw_append_quoted(StringInfo buf, const char *s, int len)
{
	appendStringInfoChar(buf, '"');
	for (int i = 0; i < len; i++)
	{
		if (s[i] == '"' || s[i] == '\\')
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, s[i]);
	}
	appendStringInfoChar(buf, '"');
}

/* Text of a JSON scalar as the input functions expect it, or NULL. */
static char *
aw_scalar_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			return NULL;
	}
}

/* Append a JSON array as a PostgreSQL array literal, elements quoted. */
static void
aw_append_array_literal(StringInfo buf, JsonbValue *v)
{
	if (v->type == jbvNull)
	{
		appendStringInfoString(buf, "NULL");
		return;
	}
	if (v->type == jbvBinary)
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	elem;
		JsonbIteratorToken tok;
		bool		first = true;

		if (!JsonContainerIsArray(v->val.binary.data))
		{
			char	   *s = JsonbToCString(NULL, v->val.binary.data,
										   v->val.binary.len);

			aw_append_quoted(buf, s, strlen(s));
			return;
		}
		appendStringInfoChar(buf, '{');
		while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			if (!first)
				appendStringInfoChar(buf, ',');
			first = false;
			aw_append_array_literal(buf, &elem);
		}
		appendStringInfoChar(buf, '}');
		return;
	}
	{
		char	   *s = aw_scalar_text(v);

		aw_append_quoted(buf, s, strlen(s));
	}
}

/* Convert one JSON value to a datum of a column's type. */
static Datum
aw_json_to_datum(AwColumn *c, JsonbValue *v, bool *isnull)
{
	char	   *str = NULL;

	*isnull = false;
	if (v->type == jbvNull)
		str = NULL;
	else if (c->typid == JSONBOID)
		return JsonbPGetDatum(JsonbValueToJsonb(v));
	else if (v->type == jbvBinary)
	{
		if (c->elemtype != InvalidOid && JsonContainerIsArray(v->val.binary.data))
		{
			StringInfoData buf;

			initStringInfo(&buf);
			aw_append_array_literal(&buf, v);
			str = buf.data;
		}
		else
			str = JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
	}
	else if (c->typid == JSONOID)
	{
		Jsonb	   *jb = JsonbValueToJsonb(v);

		str = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}
	else
		str = aw_scalar_text(v);

	/* Input functions see NULL too, so that domains check NOT NULL. */
	if (str == NULL)
		*isnull = true;
	return InputFunctionCall(&c->input, str, c->typioparam, c->typmod);
}

/* Plan the DEFAULT of column i once per target. */
static void
aw_build_default(Relation rel, AwTarget *t, int i)
{
	AwColumn   *c = &t->cols[i];
	Node	   *expr;
	MemoryContext old;

	if (c->default_built)
		return;
	expr = build_column_default(rel, i + 1);
	old = MemoryContextSwitchTo(t->cxt);
	c->default_expr = expr ? expression_planner(copyObject((Expr *) expr)) : NULL;
	c->default_seq = aw_default_sequence(rel, i + 1, &c->default_seq_free);
	c->default_built = true;
	MemoryContextSwitchTo(old);
}

/*
 * Whether column i of an insert is left NULL for the worker to draw from
 * its sequence (convert_defaults.c): when it got no value, or got NULL while
 * null_means_default (a restored dead letter, a captured row); an explicit
 * NULL otherwise is refused now, as the insert could never succeed.
 */
static bool
aw_defer_default(Relation rel, AwTarget *t, int i, bool *given, bool *nulls,
				 bool null_means_default)
{
	AwColumn   *c = &t->cols[i];

	if (c->dropped || c->generated || (given[i] && !nulls[i]))
		return false;
	aw_build_default(rel, t, i);
	if (!OidIsValid(c->default_seq))
		return false;
	if (given[i] && !null_means_default)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
						c->name, RelationGetRelationName(rel)),
				 errhint("Leave the column out to use its default.")));
	if (!c->default_seq_free)
		aw_check_default_sequence(c->default_seq);
	given[i] = true;
	nulls[i] = true;
	return true;
}

/*
 * Leave to the worker the sequence defaults of an insert's row: see
 * aw_defer_default().
 */
static void
aw_defer_defaults(Relation rel, AwTarget *t, Datum *values, bool *nulls,
				  bool *given, bool null_means_default)
{
	for (int i = 0; i < t->natts; i++)
		if (aw_defer_default(rel, t, i, given, nulls, null_means_default))
			values[i] = (Datum) 0;
}

/* Evaluate the DEFAULT of every column that got no value. */
static void
aw_fill_defaults(Relation rel, AwTarget *t, Datum *values, bool *nulls,
				 bool *given, AwConvertContext *ctx)
{
	ExprContext *econtext = NULL;

	for (int i = 0; i < t->natts; i++)
	{
		AwColumn   *c = &t->cols[i];
		ExprState  *state;

		if (given[i])
			continue;
		values[i] = (Datum) 0;
		nulls[i] = true;
		if (c->dropped || c->generated)
			continue;
		aw_build_default(rel, t, i);
		if (c->default_expr == NULL)
		{
			/* No default: NULL, which a domain may still refuse. */
			ctx->column = c->name;
			values[i] = InputFunctionCall(&c->input, NULL, c->typioparam,
										  c->typmod);
			continue;
		}
		if (c->default_state == NULL)
		{
			/*
			 * Built once per target: ExecInitExpr per call showed in
			 * profiles.
			 */
			MemoryContext old = MemoryContextSwitchTo(t->cxt);

			c->default_state = ExecInitExpr(c->default_expr, NULL);
			MemoryContextSwitchTo(old);
		}
		if (econtext == NULL)
			econtext = CreateStandaloneExprContext();
		ctx->column = c->name;
		state = c->default_state;
		values[i] = ExecEvalExpr(state, econtext, &nulls[i]);
		/* The value lives in the per-tuple memory, freed below: copy it. */
		if (!nulls[i])
			values[i] = datumCopy(values[i], TupleDescAttr(RelationGetDescr(rel), i)->attbyval,
								  TupleDescAttr(RelationGetDescr(rel), i)->attlen);
	}
	ctx->column = NULL;
	if (econtext != NULL)
		FreeExprContext(econtext, true);
}

/* Whether this key column set was already found to be a unique key. */
bool
aw_target_key_known(AwTarget *t, const AttrNumber *attnums, int nkeys,
					bool for_conflict)
{
	ListCell   *lc;

	foreach(lc, t->unique_keys)
	{
		AwKnownKey *k = (AwKnownKey *) lfirst(lc);

		if (k->nkeys == nkeys && k->for_conflict == for_conflict &&
			memcmp(k->attnums, attnums, sizeof(AttrNumber) * nkeys) == 0)
			return true;
	}
	return false;
}

/* Remember that this key column set is a unique key of the target. */
void
aw_target_key_remember(AwTarget *t, const AttrNumber *attnums, int nkeys,
					   bool for_conflict)
{
	MemoryContext old = MemoryContextSwitchTo(t->cxt);
	AwKnownKey *k = palloc(offsetof(AwKnownKey, attnums) + sizeof(AttrNumber) * nkeys);

	k->for_conflict = for_conflict;
	k->nkeys = nkeys;
	memcpy(k->attnums, attnums, sizeof(AttrNumber) * nkeys);
	t->unique_keys = lappend(t->unique_keys, k);
	MemoryContextSwitchTo(old);
}

/* Form the row as a composite datum of the target's row type. */
static Datum
aw_form_row(Relation rel, Datum *values, bool *nulls)
{
	TupleDesc	desc = RelationGetDescr(rel);
	HeapTuple	tuple;

	/* Never queue a pointer to out-of-line storage: flatten it now. */
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attlen == -1 && !nulls[i] &&
			VARATT_IS_EXTERNAL(DatumGetPointer(values[i])))
			values[i] = PointerGetDatum(detoast_external_attr((struct varlena *)
															  DatumGetPointer(values[i])));
	}
	tuple = heap_form_tuple(desc, values, nulls);
	return HeapTupleHeaderGetDatum(tuple->t_data);
}

/*
 * Build the target row from a jsonb object whose keys name columns.  When
 * restoring a row recorded earlier (a dead letter's payload), generated
 * columns are skipped and identity values are taken as they were.
 */
Datum
aw_row_from_jsonb(Relation rel, AwTarget *t, Datum jsonb, int options)
{
	return aw_row_from_jsonb_ext(rel, t, jsonb, options, NULL);
}

/*
 * aw_row_from_jsonb() with options: AW_CONVERT_RESTORING as above,
 * AW_CONVERT_NO_DEFAULTS to leave columns without a value NULL (an update
 * or delete key), AW_CONVERT_INSERT to leave sequence defaults to the
 * worker (convert_defaults.c), AW_CONVERT_GIVEN_ONLY to leave columns
 * without a value NULL, for their defaults when the row is applied.  *given_out, if asked for, receives which
 * columns the object named (by attribute index).
 */
Datum
aw_row_from_jsonb_ext(Relation rel, AwTarget *t, Datum jsonb, int options,
					  bool **given_out)
{
	bool		restoring = (options & AW_CONVERT_RESTORING) != 0;
	Jsonb	   *jb = DatumGetJsonbP(jsonb);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	Datum	   *values = palloc0(sizeof(Datum) * Max(t->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(t->natts, 1));
	bool	   *given = palloc0(sizeof(bool) * Max(t->natts, 1));
	int			current = -1;
	AwConvertContext ctx = {rel, NULL};
	ErrorContextCallback errcb;

	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("asyncwrite data must be a jsonb object"),
				 errdetail("Got a jsonb %s.",
						   JB_ROOT_IS_SCALAR(jb) ? "scalar" : "array"),
				 errhint("Pass an object whose keys are column names, as in '{\"id\": 1}'.")));

	errcb.callback = aw_convert_error_callback;
	errcb.arg = &ctx;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *name = pnstrdup(v.val.string.val, v.val.string.len);

			current = aw_column_index(t, name);
			if (current < 0)
				aw_unknown_column(rel, name);
			if (!restoring)
				aw_check_assignable(rel, &t->cols[current]);
		}
		else if (tok == WJB_VALUE)
		{
			if (t->cols[current].generated)
				continue;		/* restoring: computed again on insert */
			ctx.column = t->cols[current].name;
			values[current] = aw_json_to_datum(&t->cols[current], &v,
											   &nulls[current]);
			given[current] = true;
			ctx.column = NULL;
		}
	}
	if (given_out != NULL)
	{
		*given_out = palloc(sizeof(bool) * Max(t->natts, 1));
		memcpy(*given_out, given, sizeof(bool) * t->natts);
	}
	if ((options & AW_CONVERT_INSERT) && !(options & AW_CONVERT_GIVEN_ONLY))
		aw_defer_defaults(rel, t, values, nulls, given, restoring);
	if (options & (AW_CONVERT_NO_DEFAULTS | AW_CONVERT_GIVEN_ONLY))
	{
		for (int i = 0; i < t->natts; i++)
			if (!given[i])
				nulls[i] = true;
	}
	else
		aw_fill_defaults(rel, t, values, nulls, given, &ctx);
	error_context_stack = errcb.previous;
	return aw_form_row(rel, values, nulls);
}

/*
 * Build the target row from a composite value.  A value of the target's own
 * row type is taken as is; any other composite is matched by field name,
 * converting through text where types differ, with defaults for the rest.
 * With ignore_unknown (capture()), fields that name no column are left
 * out, and so are values for generated and identity columns (the target
 * computes its own); AW_CONVERT_EXTRA_FIELDS in options leaves out only the
 * fields that name no column (insert()).  With
 * op_column, that column gets op_value (capture()'s TG_OP).  The row is
 * an insert's: sequence defaults are left to the worker
 * (convert_defaults.c), also for a NULL captured from the source row;
 * with AW_CONVERT_GIVEN_ONLY in options, columns not given stay NULL, for
 * their defaults when the row is applied.  *given_out, if asked for,
 * receives which columns got a value.
 */
Datum
aw_row_from_record(Relation rel, AwTarget *t, Datum rec, bool ignore_unknown,
				   const char *op_column, const char *op_value, int options,
				   bool **given_out)
{
	bool		given_only = (options & AW_CONVERT_GIVEN_ONLY) != 0;
	HeapTupleHeader td = DatumGetHeapTupleHeader(rec);
	Oid			typid = HeapTupleHeaderGetTypeId(td);
	int32		typmod = HeapTupleHeaderGetTypMod(td);
	TupleDesc	recdesc = lookup_rowtype_tupdesc(typid, typmod);
	HeapTupleData tmptup;
	Datum	   *recvalues = palloc(sizeof(Datum) * Max(recdesc->natts, 1));
	bool	   *recnulls = palloc(sizeof(bool) * Max(recdesc->natts, 1));
	Datum	   *values = palloc0(sizeof(Datum) * Max(t->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(t->natts, 1));
	bool	   *given = palloc0(sizeof(bool) * Max(t->natts, 1));
	AwConvertContext ctx = {rel, NULL};
	ErrorContextCallback errcb;

	aw_tuple_over(td, &tmptup);
	heap_deform_tuple(&tmptup, recdesc, recvalues, recnulls);

	errcb.callback = aw_convert_error_callback;
	errcb.arg = &ctx;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	if (typid == RelationGetDescr(rel)->tdtypeid && recdesc->natts == t->natts)
	{
		/*
		 * The target's own row type: take every stored column as is, except
		 * that a generated or GENERATED ALWAYS identity column takes no
		 * value, as in INSERT (428C9): a composite cannot say DEFAULT, so a
		 * NULL there means it (capture() ignores what the source had).
		 */
		for (int i = 0; i < t->natts; i++)
		{
			AwColumn   *c = &t->cols[i];
			bool		computed = c->generated ||
			c->identity == ATTRIBUTE_IDENTITY_ALWAYS;

			if (computed && !recnulls[i] && !c->dropped && !ignore_unknown)
				aw_check_assignable(rel, c);
			values[i] = recvalues[i];
			nulls[i] = recnulls[i] || c->dropped || computed;
			given[i] = !computed || c->generated;
		}
		if (given_out != NULL)
		{
			*given_out = palloc(sizeof(bool) * Max(t->natts, 1));
			for (int i = 0; i < t->natts; i++)
				(*given_out)[i] = given[i] && !t->cols[i].generated &&
					!t->cols[i].dropped;
		}
		if (!given_only)
			aw_defer_defaults(rel, t, values, nulls, given, ignore_unknown);
	}
	else
	{
		for (int j = 0; j < recdesc->natts; j++)
		{
			Form_pg_attribute att = TupleDescAttr(recdesc, j);
			int			i;
			AwColumn   *c;

			if (att->attisdropped)
				continue;
			i = aw_column_index(t, NameStr(att->attname));
			if (i < 0 && (ignore_unknown || (options & AW_CONVERT_EXTRA_FIELDS)))
				continue;
			if (i < 0)
				aw_unknown_column(rel, NameStr(att->attname));
			c = &t->cols[i];
			if (ignore_unknown && (c->generated || c->identity == ATTRIBUTE_IDENTITY_ALWAYS))
				continue;		/* capture: the target computes its own */
			aw_check_assignable(rel, c);
			ctx.column = c->name;
			if (att->atttypid == c->typid && !recnulls[j])
			{
				values[i] = recvalues[j];
				nulls[i] = false;
			}
			else
			{
				char	   *str = NULL;

				if (!recnulls[j])
				{
					Oid			outfunc;
					bool		isvarlena;

					getTypeOutputInfo(att->atttypid, &outfunc, &isvarlena);
					str = OidOutputFunctionCall(outfunc, recvalues[j]);
				}
				nulls[i] = (str == NULL);
				values[i] = InputFunctionCall(&c->input, str, c->typioparam,
											  c->typmod);
			}
			given[i] = true;
			ctx.column = NULL;
		}
		if (op_column != NULL)
		{
			int			i = aw_column_index(t, op_column);

			if (i < 0)
				aw_unknown_column(rel, op_column);
			aw_check_assignable(rel, &t->cols[i]);
			ctx.column = t->cols[i].name;
			values[i] = InputFunctionCall(&t->cols[i].input, (char *) op_value,
										  t->cols[i].typioparam, t->cols[i].typmod);
			nulls[i] = false;
			given[i] = true;
			ctx.column = NULL;
		}
		if (given_out != NULL)
		{
			*given_out = palloc(sizeof(bool) * Max(t->natts, 1));
			memcpy(*given_out, given, sizeof(bool) * t->natts);
		}
		if (given_only)
		{
			for (int i = 0; i < t->natts; i++)
				if (!given[i])
					nulls[i] = true;
		}
		else
		{
			aw_defer_defaults(rel, t, values, nulls, given, ignore_unknown);
			aw_fill_defaults(rel, t, values, nulls, given, &ctx);
		}
	}
	error_context_stack = errcb.previous;
	ReleaseTupleDesc(recdesc);
	return aw_form_row(rel, values, nulls);
}
