/*-------------------------------------------------------------------------
 *
 * apply_deadletter.c
 *		Writes that failed: each is recorded in asyncwrite.dead_letters
 *		with its row (as jsonb, while the table's columns still fit it), its
 *		key and set columns, the error and the number of attempts, and
 *		NOTIFY asyncwrite_failed carries the dead letter's id.  A retried
 *		dead letter (retry_failed()) is removed when its retry is applied,
 *		and updated when it fails again.
 *
 * These statements run as the worker's own role with fixed, fully
 * qualified SQL: never as the role that queued the write.  The payload,
 * whose conversion to json may run user code (a type's cast to json), is
 * made as the role that queued the write (aw_become_writer), never as the
 * worker's own; when that role is gone, from the columns' output functions
 * only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "access/table.h"
#include "access/htup_details.h"
#include "access/genam.h"
#include "access/stratnum.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/fmgroids.h"

#include "apply.h"

static SPIPlanPtr aw_dead_letter_plan = NULL;
static SPIPlanPtr aw_dead_letter_update_plan = NULL;
static SPIPlanPtr aw_dead_letter_delete_plan = NULL;

/*
 * The LOG lines of the dead letters recorded by the transaction in
 * progress, emitted once it commits (a batch that fails as a whole records
 * its failed writes again, one transaction each).
 */
typedef struct AwDeadLetterLog
{
	uint64		write_id;
	char	   *relname;
	char	   *message;
} AwDeadLetterLog;

static MemoryContext aw_dead_letter_logcxt = NULL;
static List *aw_dead_letter_logs = NIL;

static void aw_dead_letter_log_later(uint64 write_id, const char *relname,
									 const char *message);
static void aw_dead_letter_logs_xact(XactEvent event, void *arg);

/* Prepare and keep a fixed statement of the worker's own. */
static SPIPlanPtr
aw_keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * A row as a jsonb object of its columns' text (output functions only: no
 * user code runs), for a write whose role no longer exists.
 */
static Datum
aw_row_text_jsonb(TupleDesc desc, HeapTupleHeader td)
{
	HeapTupleData tuple;
	JsonbParseState *state = NULL;
	JsonbValue *res;

	aw_tuple_over(td, &tuple);
	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < desc->natts && i < (int) HeapTupleHeaderGetNatts(td); i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		JsonbValue	k;
		JsonbValue	v;
		bool		isnull;
		Datum		d;

		if (att->attisdropped)
			continue;
		k.type = jbvString;
		k.val.string.val = NameStr(att->attname);
		k.val.string.len = strlen(NameStr(att->attname));
		(void) pushJsonbValue(&state, WJB_KEY, &k);
		d = heap_getattr(&tuple, i + 1, desc, &isnull);
		if (isnull)
			v.type = jbvNull;
		else
		{
			Oid			outfunc;
			bool		isvarlena;
			char	   *str;

			getTypeOutputInfo(att->atttypid, &outfunc, &isvarlena);
			str = OidOutputFunctionCall(outfunc, d);
			v.type = jbvString;
			v.val.string.val = str;
			v.val.string.len = strlen(str);
		}
		(void) pushJsonbValue(&state, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(res));
}

/*
 * The payload of a write as jsonb, or NULL when its layout is stale or it
 * cannot be shown as json (say, a column type whose output fails): a write
 * is recorded as failed even then, so that the queue goes on.  Converted as
 * the role that queued it, in a security-restricted operation: a cast to
 * json of a user's type runs as that user, never as the worker.
 */
static Datum
aw_payload_jsonb(AwEntryHeader *hdr, bool *isnull)
{
	Relation	rel = try_relation_open(hdr->relid, AccessShareLock);
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile Datum result = (Datum) 0;
	TupleDesc	desc;
	bool		usable;
	bool		role_exists;

	*isnull = true;
	if (rel == NULL)
		return (Datum) 0;
	usable = aw_layout_compatible(RelationGetDescr(rel), hdr);
	desc = CreateTupleDescCopy(RelationGetDescr(rel));
	table_close(rel, AccessShareLock);
	if (!usable)
		return (Datum) 0;
	aw_row_unversion((HeapTupleHeader) AW_ENTRY_PAYLOAD(hdr));
	role_exists = SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(hdr->roleid));

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		if (role_exists)
		{
			AwWriterState ws;
			Datum		json;

			aw_become_writer(hdr->roleid, &ws);
			json = DirectFunctionCall1(row_to_json,
									   PointerGetDatum(AW_ENTRY_PAYLOAD(hdr)));
			result = DirectFunctionCall1(jsonb_in,
										 CStringGetDatum(TextDatumGetCString(json)));
			aw_end_writer(&ws);
		}
		else
			result = aw_row_text_jsonb(desc, (HeapTupleHeader) AW_ENTRY_PAYLOAD(hdr));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		*isnull = false;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		aw_writer_reset();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
	return result;
}

/* Names of columns, as a text[] datum. */
static Datum
aw_colset_names(Oid relid, const AttrNumber *attnums, int n)
{
	Datum	   *names = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		names[i] = CStringGetTextDatum(get_attname(relid, attnums[i], false));
	return PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* Send NOTIFY asyncwrite_failed with a dead letter's id. */
static void
aw_notify_failure(void)
{
	bool		isnull;
	int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1,
												 &isnull));
	char		payload[32];

	snprintf(payload, sizeof(payload), INT64_FORMAT, id);
	Async_Notify("asyncwrite_failed", payload);
}

/*
 * Record in asyncwrite.dead_letters a write that failed after the given
 * number of attempts, and notify listeners.  A failed retry of a dead letter
 * updates that dead letter instead of adding one.
 */
void
aw_dead_letter_record(AwApplyRow *row, ErrorData *edata, int attempts)
{
	AwEntryHeader *hdr = row->hdr;
	Oid			argtypes[13] = {INT8OID, TEXTOID, OIDOID, TEXTOID, JSONBOID,
		OIDOID, TIMESTAMPTZOID, INT4OID, TEXTOID, TEXTOID, TEXTOID,
	TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[13];
	char		nulls[13];
	AwColumnSets *cs = aw_entry_colsets(hdr);
	char	   *relname = get_rel_name(hdr->relid);
	bool		payload_null;
	int			rc;

	memset(nulls, ' ', sizeof(nulls));
	values[7] = Int32GetDatum(attempts);
	values[8] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[9] = CStringGetTextDatum(edata->message ? edata->message : "");
	if (edata->detail)
		values[10] = CStringGetTextDatum(edata->detail);
	else
		nulls[10] = 'n';

	if (hdr->flags & AW_FLAG_RETRY)
	{
		if (aw_dead_letter_update_plan == NULL)
		{
			Oid			uargtypes[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID};

			aw_dead_letter_update_plan = aw_keep_plan(
													  "UPDATE asyncwrite.dead_letters SET attempts = attempts + $2, "
													  "failed_at = pg_catalog.clock_timestamp(), sqlstate = $3, message = $4, detail = $5 "
													  "WHERE id = $1 RETURNING id", 5, uargtypes);
		}
		{
			Datum		uvalues[5] = {Int64GetDatum(AW_ENTRY_RETRY_ID(hdr)),
			values[7], values[8], values[9], values[10]};
			char		unulls[5] = {' ', ' ', ' ', ' ', nulls[10]};

			rc = SPI_execute_plan(aw_dead_letter_update_plan, uvalues, unulls, false, 0);
		}
		if (rc == SPI_OK_UPDATE_RETURNING && SPI_processed == 1)
		{
			aw_notify_failure();
			return;
		}
	}

	if (aw_dead_letter_plan == NULL)
		aw_dead_letter_plan = aw_keep_plan(
										   "INSERT INTO asyncwrite.dead_letters "
										   "(write_id, target_name, target, operation, payload, role, "
										   " enqueued_at, attempts, sqlstate, message, detail, "
										   " key_columns, set_columns) "
										   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
										   "RETURNING id", 13, argtypes);
	values[0] = Int64GetDatum((int64) row->write_id);
	if (relname != NULL)
		values[1] = CStringGetTextDatum(quote_qualified_identifier(get_namespace_name(get_rel_namespace(hdr->relid)),
																   relname));
	else
		nulls[1] = 'n';
	values[2] = ObjectIdGetDatum(hdr->relid);
	values[3] = CStringGetTextDatum(aw_kind_name(hdr->kind));
	values[4] = aw_payload_jsonb(hdr, &payload_null);
	if (payload_null)
		nulls[4] = 'n';
	values[5] = ObjectIdGetDatum(hdr->roleid);
	values[6] = TimestampTzGetDatum(aw_clock_to_timestamp(hdr->enqueued_ms, GetCurrentTimestamp()));
	if (cs != NULL && relname != NULL)
	{
		values[11] = aw_colset_names(hdr->relid, cs->attnums, cs->nkeys);
		values[12] = aw_colset_names(hdr->relid, cs->attnums + cs->nkeys, cs->nset);
	}
	else
		nulls[11] = nulls[12] = 'n';

	rc = SPI_execute_plan(aw_dead_letter_plan, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not record asyncwrite dead letter: %s",
			 SPI_result_code_string(rc));
	aw_notify_failure();
	aw_dead_letter_log_later(row->write_id, relname, edata->message);
}

/* Keep the LOG line of a dead letter for when its transaction commits. */
static void
aw_dead_letter_log_later(uint64 write_id, const char *relname,
						 const char *message)
{
	MemoryContext oldcontext;
	AwDeadLetterLog *log;

	if (aw_dead_letter_logcxt == NULL)
	{
		aw_dead_letter_logcxt = AllocSetContextCreate(TopMemoryContext,
													  "asyncwrite dead letter logs",
													  ALLOCSET_SMALL_SIZES);
		RegisterXactCallback(aw_dead_letter_logs_xact, NULL);
	}
	oldcontext = MemoryContextSwitchTo(aw_dead_letter_logcxt);
	log = palloc(sizeof(AwDeadLetterLog));
	log->write_id = write_id;
	log->relname = pstrdup(relname ? relname : "?");
	log->message = pstrdup(message ? message : "");
	aw_dead_letter_logs = lappend(aw_dead_letter_logs, log);
	MemoryContextSwitchTo(oldcontext);
}

/*
 * At the end of the worker's transaction: log the dead letters it recorded
 * once it commits, and forget them either way.
 */
static void
aw_dead_letter_logs_xact(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT)
		return;
	if (event == XACT_EVENT_COMMIT)
	{
		foreach(lc, aw_dead_letter_logs)
		{
			AwDeadLetterLog *log = lfirst(lc);

			ereport(LOG,
					(errmsg("asyncwrite write " UINT64_FORMAT " to \"%s\" failed: %s",
							log->write_id, log->relname, log->message),
					 errdetail("The write was recorded in asyncwrite.dead_letters.")));
		}
	}
	aw_dead_letter_logs = NIL;
	MemoryContextReset(aw_dead_letter_logcxt);
}

/*
 * Remove the dead letter a retry entry comes from, before its write is
 * applied in the same subtransaction.  Returns false if it is already gone:
 * an earlier retry of it was applied, and this one must be skipped.
 */
bool
aw_dead_letter_remove(int64 id)
{
	Datum		arg = Int64GetDatum(id);
	Oid			argtype = INT8OID;

	if (aw_dead_letter_delete_plan == NULL)
		aw_dead_letter_delete_plan =
			aw_keep_plan("DELETE FROM asyncwrite.dead_letters WHERE id = $1",
						 1, &argtype);
	if (SPI_execute_plan(aw_dead_letter_delete_plan, &arg, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not remove asyncwrite dead letter");
	return SPI_processed > 0;
}

/*
 * The id of the dead letter of a write, or 0 when it has none (or the
 * table is gone), read by any role past row-level security: a caller of
 * asyncwrite.status() learns only that the write failed, not its row.
 * Read with the latest snapshot: a dead letter is committed before the
 * queue's applied mark passes its write, which the caller read before.
 */
int64
aw_dead_letter_find(uint64 write_id)
{
	Oid			nspid = get_namespace_oid("asyncwrite", true);
	Oid			relid;
	Oid			indexid;
	AttrNumber	write_id_att;
	AttrNumber	id_att;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	Snapshot	snapshot;
	HeapTuple	tup;
	int64		found = 0;

	relid = OidIsValid(nspid) ? get_relname_relid("dead_letters", nspid) : InvalidOid;
	if (!OidIsValid(relid))
		return 0;
	/* Version 1.0 has no index on write_id: its table is scanned. */
	indexid = get_relname_relid("dead_letters_write_id_idx", nspid);
	write_id_att = get_attnum(relid, "write_id");
	id_att = get_attnum(relid, "id");
	if (write_id_att == InvalidAttrNumber || id_att == InvalidAttrNumber)
		return 0;
	rel = table_open(relid, AccessShareLock);
	ScanKeyInit(&key, write_id_att, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum((int64) write_id));
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan(rel, indexid, OidIsValid(indexid), snapshot, 1, &key);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		bool		isnull;
		Datum		id = heap_getattr(tup, id_att, RelationGetDescr(rel), &isnull);

		if (!isnull)
			found = Max(found, DatumGetInt64(id));
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	return found;
}
