/*-------------------------------------------------------------------------
 *
 * apply_plan.c
 *		The statements the worker runs to apply a run of writes: one
 *		prepared statement per target, write kind and column sets, taking
 *		the run's rows as an array of the target's row type ($1) and working
 *		set-based over unnest($1):
 *
 *		insert		INSERT INTO t (cols) SELECT cols FROM unnest($1)
 *		upsert		... ON CONFLICT (keys) DO UPDATE SET c = EXCLUDED.c
 *		update		UPDATE t SET c = r.c FROM unnest($1) r WHERE t.k = r.k
 *		delete		DELETE FROM t USING unnest($1) r WHERE t.k = r.k
 *		increment	INSERT ... SELECT DISTINCT ON (keys) keys,
 *					sum(d) OVER (PARTITION BY keys), others FROM unnest($1)
 *					ON CONFLICT (keys) DO UPDATE SET d = t.d + EXCLUDED.d
 *
 * Rows of the same key in a run are grouped first (aw_plan_coalesce) so
 * that the result is the one-by-one result: upserts and updates of a key
 * become its last write, an upsert's row keeping the columns it does not
 * set from the key's first write (the one that would have inserted it);
 * increments of a key are summed by the statement, which inserts a
 * missing key's first row (rows numbered in call order WITH ORDINALITY).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_index.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "apply.h"

/* Plans are found by target, kind and a hash of the column sets. */
typedef struct AwPlanKey
{
	Oid			relid;
	uint32		kind;
	uint32		colsets_hash;
	uint32		given;			/* AW_FLAG_GIVEN: only the column sets'
								 * columns */
} AwPlanKey;

typedef struct AwPlanEntry
{
	AwPlanKey	key;
	AwPlan		p;
	uint32		fingerprint;	/* layout the SQL was built for; 0: stale */
	NameData	nspname;		/* names the SQL text uses */
	NameData	relname;
	AwColumnSets *colsets;		/* copy, to tell hash collisions apart */
	uint64		last_used;		/* aw_plan_clock when last used */
} AwPlanEntry;

/*
 * Plans kept at most: the least recently used one goes when another is
 * made (a worker would otherwise keep one per column set ever seen).
 */
#define AW_MAX_PLANS	256

static HTAB *aw_plans = NULL;
static uint64 aw_plan_clock = 0;

/* Rows seen with one key hash, while coalescing. */
typedef struct AwSeenKey
{
	uint32		hash;
	List	   *later;			/* first rows of the keys with this hash */
} AwSeenKey;

/* Relcache invalidation: rebuild the plans of a table at their next use. */
static void
aw_plan_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	AwPlanEntry *e;

	if (aw_plans == NULL)
		return;
	hash_seq_init(&status, aw_plans);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (!OidIsValid(relid) || e->key.relid == relid)
			e->fingerprint = 0;
	}
}

/*
 * Whether a row queued with this layout can be read with the table's
 * current one: the same, or the same followed by columns added since (they
 * read as the value existing rows got, or NULL).
 */
bool
aw_layout_compatible(TupleDesc desc, AwEntryHeader *hdr)
{
	int			natts = AW_ENTRY_NATTS(hdr);

	if (natts == desc->natts)
		return aw_tupdesc_fingerprint(desc) == hdr->fingerprint;
	return natts < desc->natts &&
		aw_tupdesc_fingerprint_prefix(desc, natts) == hdr->fingerprint;
}

/* Quoted name of column attnum. */
static const char *
aw_col(TupleDesc desc, AttrNumber attnum)
{
	return quote_identifier(NameStr(TupleDescAttr(desc, attnum - 1)->attname));
}

/* Append "prefix.k1, prefix.k2" (or "k1 = ..." forms) for the key columns. */
static void
aw_append_keys(StringInfo buf, TupleDesc desc, AwColumnSets *cs,
			   const char *prefix)
{
	for (int i = 0; i < cs->nkeys; i++)
		appendStringInfo(buf, "%s%s%s", i > 0 ? ", " : "", prefix,
						 aw_col(desc, cs->attnums[i]));
}

/*
 * The equality operators of the unique index whose columns are the key,
 * one per key column in the key's order, or an error if there is none now.
 */
static Oid *
aw_key_equality_ops(Relation rel, AwColumnSets *cs)
{
	Oid		   *ops = palloc(sizeof(Oid) * cs->nkeys);

	if (!aw_find_key_index(rel, cs->attnums, cs->nkeys, false, ops))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("the key columns are no longer a unique key of \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail("The unique index the write was checked against was dropped after it was queued.")));
	return ops;
}

/* "OPERATOR(schema.name)" of an operator, so no search_path is involved. */
static char *
aw_operator_sql(Oid opno)
{
	HeapTuple	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Form_pg_operator op;
	char	   *result;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tup);
	result = psprintf("OPERATOR(%s.%s)",
					  quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(tup);
	return result;
}

/*
 * Append "t.k1 OPERATOR(s.=) r.k1 AND ...", with the key index's own
 * equality: a bare "=" would resolve through the worker's search_path.
 */
static void
aw_append_key_match(StringInfo buf, Relation rel, AwColumnSets *cs)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Oid		   *ops = aw_key_equality_ops(rel, cs);

	for (int i = 0; i < cs->nkeys; i++)
		appendStringInfo(buf, "%st.%s %s r.%s", i > 0 ? " AND " : "",
						 aw_col(desc, cs->attnums[i]), aw_operator_sql(ops[i]),
						 aw_col(desc, cs->attnums[i]));
}

/*
 * Whether the key's values are equal exactly when their stored bytes are,
 * so that rows can be coalesced by comparing bytes: integers, oid, bool,
 * uuid, dates and timestamps, bytea, and text types with a deterministic
 * collation compared with the type's own equality.
 */
static bool
aw_plan_keys_bitwise(Relation rel, AwColumnSets *cs)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Oid		   *ops = aw_key_equality_ops(rel, cs);

	for (int i = 0; i < cs->nkeys; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, cs->attnums[i] - 1);
		Oid			typid = getBaseType(att->atttypid);
		TypeCacheEntry *tc = lookup_type_cache(typid, TYPECACHE_EQ_OPR);

		if (ops[i] != tc->eq_opr)
			return false;
		switch (typid)
		{
			case INT2OID:
			case INT4OID:
			case INT8OID:
			case OIDOID:
			case BOOLOID:
			case UUIDOID:
			case DATEOID:
			case TIMESTAMPOID:
			case TIMESTAMPTZOID:
			case BYTEAOID:
				break;
			case TEXTOID:
			case VARCHAROID:
				if (!OidIsValid(att->attcollation) ||
					!get_collation_isdeterministic(att->attcollation))
					return false;
				break;
			default:
				return false;
		}
	}
	return true;
}

/* Build the SQL of a plan. */
static char *
aw_plan_sql(Relation rel, uint8 kind, AwColumnSets *cs, bool given,
			const char *nsp, const char *relname)
{
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData cols;
	StringInfoData sel;
	StringInfoData sql;

	initStringInfo(&cols);
	initStringInfo(&sel);
	initStringInfo(&sql);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name;

		if (att->attisdropped || att->attgenerated)
			continue;
		/* The others take their defaults, as in an INSERT naming these. */
		if (given && !aw_attnum_in(cs->attnums, cs->nkeys + cs->nset, att->attnum))
			continue;
		name = quote_identifier(NameStr(att->attname));
		appendStringInfo(&cols, "%s%s", cols.len > 0 ? ", " : "", name);
		if (kind == AW_KIND_INCREMENT &&
			aw_attnum_in(cs->attnums + cs->nkeys, cs->nset, att->attnum))
		{
			appendStringInfo(&sel, "%spg_catalog.sum(r.%s) OVER (PARTITION BY ", sel.len > 0 ? ", " : "", name);
			aw_append_keys(&sel, desc, cs, "r.");
			appendStringInfoChar(&sel, ')');
		}
		else
			appendStringInfo(&sel, "%sr.%s", sel.len > 0 ? ", " : "", name);
	}

	switch (kind)
	{
		case AW_KIND_INSERT:
		case AW_KIND_UPSERT:
			/* No column given (AW_FLAG_GIVEN): every column its default. */
			if (cols.len == 0)
				appendStringInfo(&sql, "INSERT INTO %s.%s AS t OVERRIDING SYSTEM VALUE "
								 "SELECT FROM pg_catalog.unnest($1) AS r",
								 nsp, relname);
			else
				appendStringInfo(&sql, "INSERT INTO %s.%s AS t (%s) OVERRIDING SYSTEM VALUE "
								 "SELECT %s FROM pg_catalog.unnest($1) AS r",
								 nsp, relname, cols.data, sel.data);
			if (kind == AW_KIND_UPSERT)
			{
				appendStringInfoString(&sql, " ON CONFLICT (");
				aw_append_keys(&sql, desc, cs, "");
				if (cs->nset == 0)
					appendStringInfoString(&sql, ") DO NOTHING");
				else
				{
					appendStringInfoString(&sql, ") DO UPDATE SET ");
					for (int i = 0; i < cs->nset; i++)
					{
						const char *c = aw_col(desc, cs->attnums[cs->nkeys + i]);

						appendStringInfo(&sql, "%s%s = EXCLUDED.%s", i > 0 ? ", " : "", c, c);
					}
				}
			}
			break;
		case AW_KIND_INCREMENT:
			{
				/*
				 * The row inserted for a missing key is its first increment's
				 * (with the summed deltas): rows numbered in call order,
				 * under a name no column has.
				 */
				StringInfoData aliases;
				char		ord[NAMEDATALEN];
				int			n = 0;

				do
					snprintf(ord, sizeof(ord), "aw_call_order%s%d",
							 n > 0 ? "_" : "", n);
				while (get_attnum(RelationGetRelid(rel), ord) != InvalidAttrNumber && ++n);
				initStringInfo(&aliases);
				for (int i = 0; i < desc->natts; i++)
				{
					Form_pg_attribute att = TupleDescAttr(desc, i);

					if (!att->attisdropped)
						appendStringInfo(&aliases, "%s, ",
										 quote_identifier(NameStr(att->attname)));
				}
				appendStringInfo(&sql, "INSERT INTO %s.%s AS t (%s) OVERRIDING SYSTEM VALUE "
								 "SELECT DISTINCT ON (",
								 nsp, relname, cols.data);
				aw_append_keys(&sql, desc, cs, "r.");
				appendStringInfo(&sql, ") %s FROM pg_catalog.unnest($1) WITH ORDINALITY AS r(%s%s) ORDER BY ",
								 sel.data, aliases.data, ord);
				aw_append_keys(&sql, desc, cs, "r.");
				appendStringInfo(&sql, ", r.%s", ord);
			}
			appendStringInfoString(&sql, " ON CONFLICT (");
			aw_append_keys(&sql, desc, cs, "");
			appendStringInfoString(&sql, ") DO UPDATE SET ");
			for (int i = 0; i < cs->nset; i++)
			{
				const char *c = aw_col(desc, cs->attnums[cs->nkeys + i]);

				appendStringInfo(&sql, "%s%s = t.%s OPERATOR(pg_catalog.+) EXCLUDED.%s", i > 0 ? ", " : "", c, c, c);
			}
			break;
		case AW_KIND_UPDATE:
			appendStringInfo(&sql, "UPDATE %s.%s AS t SET ", nsp, relname);
			for (int i = 0; i < cs->nset; i++)
			{
				const char *c = aw_col(desc, cs->attnums[cs->nkeys + i]);

				appendStringInfo(&sql, "%s%s = r.%s", i > 0 ? ", " : "", c, c);
			}
			appendStringInfoString(&sql, " FROM pg_catalog.unnest($1) AS r WHERE ");
			aw_append_key_match(&sql, rel, cs);
			break;
		case AW_KIND_DELETE:
			appendStringInfo(&sql, "DELETE FROM %s.%s AS t USING pg_catalog.unnest($1) AS r WHERE ",
							 nsp, relname);
			aw_append_key_match(&sql, rel, cs);
			break;
		default:
			elog(ERROR, "unknown asyncwrite write kind %d", kind);
	}
	return sql.data;
}

/*
 * Open the target of a run of writes like hdr with RowExclusiveLock, or
 * error if the table is gone or its columns changed so that the queued row
 * no longer fits them.
 */
Relation
aw_plan_open_target(AwEntryHeader *hdr)
{
	Relation	rel = try_relation_open(hdr->relid, RowExclusiveLock);

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target table with OID %u does not exist", hdr->relid),
				 errdetail("The table was dropped after the write was queued.")));
	if (!aw_layout_compatible(RelationGetDescr(rel), hdr))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("columns of table \"%s\" changed after the write was queued",
						RelationGetRelationName(rel)),
				 errdetail("The row was converted for the table's earlier columns (ALTER TABLE ... DROP COLUMN or ALTER COLUMN ... TYPE since)."),
				 errhint("Queue the write again for the table's current columns.")));
	return rel;
}

/*
 * Keep at most AW_MAX_PLANS plans: forget one of a dropped table, else the
 * least recently used one.
 * The one being made was used last, so it stays; a plan in use by an outer
 * run (a trigger's synchronous write nests) was used just before it.
 */
static void
aw_plan_evict(void)
{
	HASH_SEQ_STATUS status;
	AwPlanEntry *e;
	AwPlanEntry *oldest = NULL;

	if (hash_get_num_entries(aw_plans) <= AW_MAX_PLANS)
		return;
	/* A plan of a dropped table first, else the least recently used. */
	hash_seq_init(&status, aw_plans);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (e->fingerprint == 0 &&
			!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(e->key.relid)))
		{
			oldest = e;
			hash_seq_term(&status);
			break;
		}
		if (oldest == NULL || e->last_used < oldest->last_used)
			oldest = e;
	}
	if (oldest->p.plan != NULL)
		SPI_freeplan(oldest->p.plan);
	if (oldest->colsets != NULL)
		pfree(oldest->colsets);
	(void) hash_search(aw_plans, &oldest->key, HASH_REMOVE, NULL);
}

/*
 * The plan for a run of writes like hdr, for the current columns of its
 * target rel, opened by aw_plan_open_target().
 */
AwPlan *
aw_plan_for(AwEntryHeader *hdr, Relation rel)
{
	AwColumnSets *cs = aw_entry_colsets(hdr);
	Size		cs_size = cs ? AW_COLSETS_SIZE(cs->nkeys, cs->nset) : 0;
	AwPlanKey	key;
	AwPlanEntry *e;
	bool		found;
	TupleDesc	desc;
	uint32		fingerprint;
	const char *nsp;
	Oid			argtype;

	if (aw_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(AwPlanKey);
		ctl.entrysize = sizeof(AwPlanEntry);
		aw_plans = hash_create("asyncwrite plans", 64, &ctl, HASH_ELEM | HASH_BLOBS);
		CacheRegisterRelcacheCallback(aw_plan_invalidate, (Datum) 0);
	}

	desc = RelationGetDescr(rel);
	fingerprint = aw_tupdesc_fingerprint(desc);
	nsp = get_namespace_name(RelationGetNamespace(rel));

	memset(&key, 0, sizeof(key));
	key.relid = hdr->relid;
	key.kind = hdr->kind;
	key.colsets_hash = cs ? hash_bytes((const unsigned char *) cs, cs_size) : 0;
	key.given = hdr->flags & AW_FLAG_GIVEN;
	e = hash_search(aw_plans, &key, HASH_ENTER, &found);
	e->last_used = ++aw_plan_clock;
	if (!found)
	{
		e->p.plan = NULL;
		e->colsets = NULL;
		e->fingerprint = 0;
		aw_plan_evict();
	}

	/*
	 * The SQL names the table and columns: rebuild it when a relcache
	 * invalidation marked it stale, or when the table or its schema was
	 * renamed (a schema rename invalidates nothing).
	 */
	if (found && e->fingerprint == fingerprint && e->p.plan != NULL &&
		strcmp(NameStr(e->relname), RelationGetRelationName(rel)) == 0 &&
		strcmp(NameStr(e->nspname), nsp) == 0 &&
		(cs == NULL || memcmp(e->colsets, cs, cs_size) == 0))
		return &e->p;

	if (found && e->p.plan != NULL)
		SPI_freeplan(e->p.plan);
	if (found && e->colsets != NULL)
		pfree(e->colsets);
	e->p.plan = NULL;
	e->colsets = NULL;
	e->fingerprint = 0;
	namestrcpy(&e->relname, RelationGetRelationName(rel));
	namestrcpy(&e->nspname, nsp);
	e->p.rowtype = desc->tdtypeid;
	get_typlenbyvalalign(e->p.rowtype, &e->p.typlen, &e->p.typbyval, &e->p.typalign);
	argtype = get_array_type(e->p.rowtype);
	e->p.plan = SPI_prepare(aw_plan_sql(rel, hdr->kind, cs,
										(hdr->flags & AW_FLAG_GIVEN) != 0,
										quote_identifier(NameStr(e->nspname)),
										quote_identifier(NameStr(e->relname))),
							1, &argtype);
	if (e->p.plan == NULL)
		elog(ERROR, "could not prepare asyncwrite %s: %s", aw_kind_name(hdr->kind),
			 SPI_result_code_string(SPI_result));
	e->p.keys_bitwise = (hdr->kind == AW_KIND_UPSERT || hdr->kind == AW_KIND_UPDATE) &&
		aw_plan_keys_bitwise(rel, cs);
	if (SPI_keepplan(e->p.plan) != 0)
		elog(ERROR, "could not keep asyncwrite plan");
	if (cs != NULL)
	{
		e->colsets = MemoryContextAlloc(TopMemoryContext, cs_size);
		memcpy(e->colsets, cs, cs_size);
	}
	e->fingerprint = fingerprint;
	return &e->p;
}

/*
 * Group a run's rows by key, as if applied one by one: first[i] receives the
 * index of the first row with row i's key (i itself if none came before),
 * keep[i] whether row i is the last one with its key.  Keys are compared
 * by their stored bytes, so only for keys where that is equality
 * (AwPlan.keys_bitwise); other runs are applied row by row.  NULL keys
 * match nothing, as in the statement.
 */
void
aw_plan_coalesce(Relation rel, AwApplyRow *rows, int n, bool *keep, int *first)
{
	TupleDesc	desc = RelationGetDescr(rel);
	AwColumnSets *cs = aw_entry_colsets(rows[0].hdr);
	int			nkeys = cs->nkeys;
	Datum	   *keys = palloc(sizeof(Datum) * n * nkeys);
	bool	   *knulls = palloc(sizeof(bool) * n * nkeys);
	int		   *last = palloc(sizeof(int) * n);
	HTAB	   *seen;
	HASHCTL		ctl;

	ctl.keysize = sizeof(uint32);
	ctl.entrysize = sizeof(AwSeenKey);
	ctl.hcxt = CurrentMemoryContext;
	seen = hash_create("asyncwrite coalesce", n, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (int i = 0; i < n; i++)
	{
		HeapTupleHeader td = (HeapTupleHeader) AW_ENTRY_PAYLOAD(rows[i].hdr);
		HeapTupleData tup;
		uint32		h = 0;
		bool		anynull = false;
		bool		found;
		AwSeenKey  *entry;
		ListCell   *lc;

		aw_tuple_over(td, &tup);
		for (int k = 0; k < nkeys; k++)
		{
			AttrNumber	attnum = cs->attnums[k];
			Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
			Datum		d = heap_getattr(&tup, attnum, desc, &knulls[i * nkeys + k]);

			/* A compressed value (from a table row) compares uncompressed. */
			if (att->attlen == -1 && !knulls[i * nkeys + k])
				d = PointerGetDatum(pg_detoast_datum_packed((struct varlena *) DatumGetPointer(d)));
			keys[i * nkeys + k] = d;
			if (knulls[i * nkeys + k])
			{
				anynull = true;
				continue;
			}
			if (att->attbyval)
				h = hash_combine(h, hash_bytes((unsigned char *) &d, sizeof(Datum)));
			else if (att->attlen == -1)
				h = hash_combine(h, hash_bytes((unsigned char *) VARDATA_ANY(DatumGetPointer(d)),
											   VARSIZE_ANY_EXHDR(DatumGetPointer(d))));
			else
				h = hash_combine(h, hash_bytes((unsigned char *) DatumGetPointer(d),
											   datumGetSize(d, false, att->attlen)));
		}
		first[i] = i;
		last[i] = i;
		if (anynull)
			continue;
		entry = hash_search(seen, &h, HASH_ENTER, &found);
		if (!found)
			entry->later = NIL;
		foreach(lc, entry->later)
		{
			int			j = lfirst_int(lc);
			bool		same = true;

			for (int k = 0; k < nkeys && same; k++)
			{
				Form_pg_attribute att = TupleDescAttr(desc, cs->attnums[k] - 1);

				Datum		a = keys[i * nkeys + k];
				Datum		b = keys[j * nkeys + k];

				/* Varlenas by their data: a short header equals a long one. */
				if (att->attlen == -1)
					same = VARSIZE_ANY_EXHDR(DatumGetPointer(a)) ==
						VARSIZE_ANY_EXHDR(DatumGetPointer(b)) &&
						memcmp(VARDATA_ANY(DatumGetPointer(a)),
							   VARDATA_ANY(DatumGetPointer(b)),
							   VARSIZE_ANY_EXHDR(DatumGetPointer(a))) == 0;
				else
					same = datumIsEqual(a, b, att->attbyval, att->attlen);
			}
			if (same)
			{
				first[i] = j;
				last[j] = i;
				break;
			}
		}
		if (first[i] == i)
			entry->later = lappend_int(entry->later, i);
	}
	for (int i = 0; i < n; i++)
		keep[i] = (last[first[i]] == i);
	hash_destroy(seen);
}
