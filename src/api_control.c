/*-------------------------------------------------------------------------
 *
 * api_control.c
 *		The SQL functions to wait for, hold and watch the queue: flush(),
 *		wait(), pause(), resume(), last_write_id() and the statistics
 *		behind the asyncwrite.stats view.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "access/xlog.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "api.h"
#include "apply.h"
#include "launcher.h"
#include "submit.h"
#include "wal.h"

PG_FUNCTION_INFO_V1(aw_flush);
PG_FUNCTION_INFO_V1(aw_wait);
PG_FUNCTION_INFO_V1(aw_pause);
PG_FUNCTION_INFO_V1(aw_resume);
PG_FUNCTION_INFO_V1(aw_last_write_id_fn);
PG_FUNCTION_INFO_V1(aw_queue_stats);
PG_FUNCTION_INFO_V1(aw_status);

#define AW_STATS_COLS 19

/* Milliseconds of an optional interval argument; -1 when NULL. */
static int64
aw_timeout_ms(FunctionCallInfo fcinfo, int argno)
{
	Interval   *iv;
	int64		us;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return -1;
	iv = PG_GETARG_INTERVAL_P(argno);
	us = iv->time + (int64) iv->day * USECS_PER_DAY +
		(int64) iv->month * DAYS_PER_MONTH * USECS_PER_DAY;
	if (us < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative")));
	return us / 1000;
}

/*
 * Refuse to wait for the queue from inside its apply worker (a trigger or
 * default on a target): the worker would wait for itself, forever.
 */
static void
aw_check_not_worker(const char *fn)
{
	if (aw_is_worker)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s cannot be called while asyncwrite applies queued writes", fn),
				 errdetail("The apply worker would wait for itself."),
				 errhint("Do not call asyncwrite.flush() or asyncwrite.wait() from triggers or defaults of tables written through asyncwrite.")));
}

/*
 * This database's queue, to wait on: bound if its writes are still to be
 * read back from the WAL after a restart (they were queued before), but
 * never during recovery (a standby queues nothing and rebuilds no queue).
 */
static AwQueue *
aw_queue_to_wait_on(void)
{
	AwQueue    *q = aw_queue_lookup(MyDatabaseId);

	if (q == NULL && !RecoveryInProgress() &&
		aw_queue_recovery_pending(MyDatabaseId))
		q = aw_launcher_bind(MyDatabaseId);
	return q;
}

/* Whether write_id was given out by this database's queue q (or NULL). */
static bool
aw_write_id_issued(AwQueue *q, int64 write_id)
{
	return q != NULL && write_id > 0 &&
		(uint64) write_id <= aw_queue_last_write_id(q);
}

/* asyncwrite.flush(timeout interval): wait for everything queued so far. */
Datum
aw_flush(PG_FUNCTION_ARGS)
{
	int64		timeout_ms = aw_timeout_ms(fcinfo, 0);
	AwQueue    *q;
	int			pending = aw_xact_pending_count();

	aw_check_not_worker("asyncwrite.flush()");
	/* A standby queues nothing: its primary applies what it replays. */
	if (RecoveryInProgress())
		PG_RETURN_BOOL(true);
	q = aw_queue_to_wait_on();
	if (pending > 0)
		ereport(NOTICE,
				(errmsg("asyncwrite.flush() does not wait for the %d writes this transaction queues when it commits", pending),
				 errhint("Call asyncwrite.flush() after COMMIT to wait for them.")));
	if (q == NULL)
		PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(aw_wait_applied(q, 0, timeout_ms, NULL));
}

/*
 * The write id argument 0 of wait() and status(), and this database's
 * queue (bound if it waits for recovery), or NULL; *issued: whether the id
 * was given out here.
 */
static AwQueue *
aw_write_id_arg(FunctionCallInfo fcinfo, int64 *write_id, bool *issued)
{
	AwQueue    *q;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("write_id must not be null")));
	*write_id = PG_GETARG_INT64(0);
	q = aw_queue_to_wait_on();
	*issued = aw_write_id_issued(q, *write_id);
	return q;
}

/* asyncwrite.wait(write_id bigint, timeout interval): wait for one write. */
Datum
aw_wait(PG_FUNCTION_ARGS)
{
	int64		write_id;
	int64		timeout_ms = aw_timeout_ms(fcinfo, 1);
	AwQueue    *q;
	bool		issued;

	aw_check_not_worker("asyncwrite.wait()");
	q = aw_write_id_arg(fcinfo, &write_id, &issued);

	/*
	 * While the queue reads its writes back from the WAL, their ids may be
	 * above those this server gave out (after a failover): wait for the whole
	 * queue, then for the write if it was issued at all (its id may also have
	 * gone to a new write since).
	 */
	if (!issued && write_id > 0 && q != NULL && aw_queue_recovering(q))
	{
		TimestampTz start = GetCurrentTimestamp();

		if (!aw_wait_applied(q, 0, timeout_ms, NULL))
			PG_RETURN_BOOL(false);
		if (timeout_ms >= 0)
			timeout_ms = Max(0, timeout_ms -
							 (GetCurrentTimestamp() - start) / 1000);
	}
	/* Again: the queue may have been rebuilt meanwhile. */
	if (!issued)
		issued = aw_write_id_issued(q, write_id);
	if (!issued)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("write id " INT64_FORMAT " was not issued in this database", write_id),
				 errdetail("The highest write id issued so far is " UINT64_FORMAT ".",
						   q ? aw_queue_last_write_id(q) : 0)));
	PG_RETURN_BOOL(aw_wait_applied(q, (uint64) write_id, timeout_ms, NULL));
}

/*
 * asyncwrite.status(write_id bigint, OUT state text, OUT dead_letter_id
 * bigint): what became of a write of this database.  'queued' until it is
 * done; then 'failed' with its dead letter, else 'applied'; 'unknown' for
 * an id not issued here.  Cheap: two reads of shared memory and, once the
 * write is done, an index lookup of its dead letter.
 */
Datum
aw_status(PG_FUNCTION_ARGS)
{
	int64		write_id;
	AwQueue    *q;
	bool		issued;
	int64		dead_letter = 0;
	const char *state;
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, true};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	q = aw_write_id_arg(fcinfo, &write_id, &issued);
	if (!issued)
		state = "unknown";
	else if ((uint64) write_id > aw_queue_applied_write_id(q))
		state = "queued";
	else if ((dead_letter = aw_dead_letter_find((uint64) write_id)) > 0)
	{
		state = "failed";
		values[1] = Int64GetDatum(dead_letter);
		nulls[1] = false;
	}
	else
		state = "applied";
	values[0] = CStringGetTextDatum(state);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* Refuse pause/resume unless the caller owns the database. */
static void
aw_check_database_owner(const char *fn)
{
	if (!aw_database_ownercheck(MyDatabaseId, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", fn),
				 errdetail("Only the owner of database \"%s\" or a superuser may pause or resume its asyncwrite worker.",
						   get_database_name(MyDatabaseId))));
}

/* Set the paused flag of this database's queue and wake its worker. */
static void
aw_set_paused(bool paused)
{
	AwQueue    *q;
	Latch	   *latch;
	bool		pending;

	/* Again if the slot is given to another database meanwhile. */
	do
		q = aw_launcher_bind(MyDatabaseId);
	while (!aw_queue_set_paused(q, MyDatabaseId, paused, &latch, &pending));
	if (latch)
		SetLatch(latch);
	else if (!paused && pending)
		aw_worker_ensure(q);
}

/* asyncwrite.pause(): stop applying in this database; queueing goes on. */
Datum
aw_pause(PG_FUNCTION_ARGS)
{
	aw_check_available();
	aw_check_database_owner("asyncwrite.pause()");
	aw_set_paused(true);
	PG_RETURN_VOID();
}

/* asyncwrite.resume(): apply again in this database. */
Datum
aw_resume(PG_FUNCTION_ARGS)
{
	aw_check_available();
	aw_check_database_owner("asyncwrite.resume()");
	aw_set_paused(false);
	PG_RETURN_VOID();
}

/* asyncwrite.last_write_id(): the highest write id this session submitted. */
Datum
aw_last_write_id_fn(PG_FUNCTION_ARGS)
{
	uint64		id = aw_xact_last_write_id();

	if (id == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64((int64) id);
}

/* A nonzero timestamp as a datum, else NULL. */
static Datum
aw_timestamp_or_null(TimestampTz ts, bool *isnull)
{
	*isnull = (ts == 0);
	return TimestampTzGetDatum(ts);
}

/* The ranges of a queue's lost write ids, as an int8multirange. */
static Datum
aw_lost_ranges(const AwQueueState *s)
{
	StringInfoData buf;
	Oid			typinput;
	Oid			typioparam;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; i < s->nlost_ranges; i++)
		appendStringInfo(&buf, "%s[" UINT64_FORMAT "," UINT64_FORMAT "]",
						 i > 0 ? "," : "", s->lost_ranges[i][0],
						 s->lost_ranges[i][1]);
	appendStringInfoChar(&buf, '}');
	getTypeInputInfo(INT8MULTIRANGEOID, &typinput, &typioparam);
	return OidInputFunctionCall(typinput, buf.data, typioparam, -1);
}

/* asyncwrite.queue_stats(): a row per bound queue. */
Datum
aw_queue_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	aw_check_available();
	InitMaterializedSRF(fcinfo, 0);

	for (int i = 0; i < aw_queue_count(); i++)
	{
		AwQueue    *q = aw_queue_at(i);
		AwQueueState s;
		Datum		values[AW_STATS_COLS];
		bool		nulls[AW_STATS_COLS];
		const char *state;
		AwSlotInfo	slot;

		aw_queue_read_state(q, &s);
		if (s.dboid == InvalidOid)
			continue;

		if (s.recovering)
			state = "recovering";
		else if (s.paused)
			state = "paused";
		else if (s.closed)
			state = "closed";
		else if (s.worker_pid == 0)
			state = "stopped";
		else if (s.applying)
			state = "applying";
		else
			state = "idle";

		memset(nulls, 0, sizeof(nulls));
		values[0] = ObjectIdGetDatum(s.dboid);
		values[1] = Int32GetDatum((int32) s.worker_pid);
		nulls[1] = (s.worker_pid == 0);
		values[2] = CStringGetTextDatum(state);
		values[3] = Int64GetDatum((int64) (s.last_write_id - s.applied_write_id));
		values[4] = Int64GetDatum((int64) (s.head - s.tail));
		values[5] = Int64GetDatum((int64) aw_queue_capacity());
		values[6] = Int64GetDatum((int64) s.enqueued);
		values[7] = Int64GetDatum((int64) s.applied);
		values[8] = Int64GetDatum((int64) s.failed);
		values[9] = Int64GetDatum((int64) s.batches);
		values[10] = aw_timestamp_or_null(aw_queue_oldest_enqueued_at(q), &nulls[10]);
		values[11] = aw_timestamp_or_null(s.last_applied_at, &nulls[11]);
		/* Installed at 1.0, the function has 12 columns: the rest is ignored. */
		values[12] = Int32GetDatum((int32) aw_queue_head_holder(q));
		nulls[12] = (DatumGetInt32(values[12]) == 0);
		aw_wal_slot_info(s.dboid, &slot);
		values[13] = CStringGetTextDatum(slot.name);
		nulls[13] = !slot.exists;
		values[14] = LSNGetDatum(slot.restart_lsn);
		nulls[14] = XLogRecPtrIsInvalid(slot.restart_lsn);
		values[15] = Int64GetDatum(nulls[14] ? 0 :
								   (int64) (GetXLogInsertRecPtr() - slot.restart_lsn));
		nulls[15] = nulls[14];
		values[16] = Int64GetDatum((int64) s.recovered);
		values[17] = Int64GetDatum((int64) s.lost);
		values[18] = aw_lost_ranges(&s);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
