/*-------------------------------------------------------------------------
 *
 * stats.c
 *		The queue statistics behind the asyncwrite.stats view: one row per
 *		database queue in use.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "asyncwrite.h"

PG_FUNCTION_INFO_V1(aw_queue_stats);

#define AW_STATS_COLS 12

/* A nonzero timestamp as a datum, else NULL. */
static Datum
aw_timestamp_or_null(TimestampTz ts, bool *isnull)
{
	*isnull = (ts == 0);
	return TimestampTzGetDatum(ts);
}

/* asyncwrite.queue_stats(): a row per bound queue. */
Datum
aw_queue_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	aw_check_available();
	InitMaterializedSRF(fcinfo, 0);

	for (int i = 0; i < aw_control->max_databases; i++)
	{
		AwQueue    *q = &aw_control->queues[i];
		Datum		values[AW_STATS_COLS];
		bool		nulls[AW_STATS_COLS];
		Oid			dboid;
		pid_t		pid;
		bool		paused;
		uint64		head;
		uint64		last_id;
		uint64		enqueued;
		const char *state;

		LWLockAcquire(&q->lock, LW_EXCLUSIVE);
		dboid = q->dboid;
		pid = q->worker_pid;
		paused = q->paused;
		head = q->head;
		last_id = q->next_write_id - 1;
		enqueued = q->enqueued;
		LWLockRelease(&q->lock);
		if (dboid == InvalidOid)
			continue;

		if (paused)
			state = "paused";
		else if (pid == 0)
			state = "stopped";
		else if (pg_atomic_read_u32(&q->applying))
			state = "applying";
		else
			state = "idle";

		memset(nulls, 0, sizeof(nulls));
		values[0] = ObjectIdGetDatum(dboid);
		values[1] = Int32GetDatum((int32) pid);
		nulls[1] = (pid == 0);
		values[2] = CStringGetTextDatum(state);
		values[3] = Int64GetDatum((int64) (last_id - pg_atomic_read_u64(&q->applied_write_id)));
		values[4] = Int64GetDatum((int64) (head - pg_atomic_read_u64(&q->tail)));
		values[5] = Int64GetDatum((int64) aw_control->capacity);
		values[6] = Int64GetDatum((int64) enqueued);
		values[7] = Int64GetDatum((int64) pg_atomic_read_u64(&q->applied));
		values[8] = Int64GetDatum((int64) pg_atomic_read_u64(&q->failed));
		values[9] = Int64GetDatum((int64) pg_atomic_read_u64(&q->batches));
		values[10] = aw_timestamp_or_null(aw_queue_oldest_enqueued_at(q), &nulls[10]);
		values[11] = aw_timestamp_or_null((TimestampTz) pg_atomic_read_u64(&q->last_applied_at),
										  &nulls[11]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
