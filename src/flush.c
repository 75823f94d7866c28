/*-------------------------------------------------------------------------
 *
 * flush.c
 *		flush(), wait(), pause() and resume(): waiting for queued writes to
 *		be applied, and holding the apply worker of a database.
 *
 * Waiters sleep on the queue's "applied" condition variable, which the
 * worker broadcasts after each batch.  Condition-variable sleeps are
 * invisible to the deadlock detector, so every sleep has a timeout after
 * which the waiter re-checks the applied mark and that a worker runs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "asyncwrite.h"

PG_FUNCTION_INFO_V1(aw_flush);
PG_FUNCTION_INFO_V1(aw_wait);
PG_FUNCTION_INFO_V1(aw_pause);
PG_FUNCTION_INFO_V1(aw_resume);

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

/* The queue this backend counts itself a waiter of, for exit cleanup. */
static AwQueue *aw_waiting_on = NULL;
static bool aw_waiter_cleanup_registered = false;

/* before_shmem_exit: a FATAL exit skips PG_FINALLY; uncount ourselves. */
static void
aw_waiter_cleanup(int code, Datum arg)
{
	if (aw_waiting_on != NULL)
		pg_atomic_fetch_sub_u32(&aw_waiting_on->flush_waiters, 1);
	aw_waiting_on = NULL;
}

/*
 * Raise a deadlock error if the queue's worker waits for a lock this
 * backend holds: what we wait for could then never happen, and the
 * deadlock detector cannot see a condition-variable wait.
 */
void
aw_check_worker_blocked(AwQueue *q, const char *what)
{
	pid_t		pid;
	ArrayType  *blockers;
	Datum	   *elems;
	int			nelems;

	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	pid = q->worker_pid;
	LWLockRelease(&q->lock);
	if (pid == 0)
		return;
	blockers = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids,
													  Int32GetDatum((int32) pid)));
	deconstruct_array(blockers, INT4OID, 4, true, TYPALIGN_INT, &elems, NULL, &nelems);
	for (int i = 0; i < nelems; i++)
	{
		if (DatumGetInt32(elems[i]) == MyProcPid)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
					 errmsg("deadlock detected"),
					 errdetail("This session waits for %s, but the asyncwrite worker (PID %d) waits for a lock this session holds.",
							   what, (int) pid),
					 errhint("Commit before waiting, or take the lock after asyncwrite.flush().")));
	}
}

/*
 * The wait of aw_wait_applied(), between its bookkeeping.  With whole_queue,
 * the target is everything queued once the writes released by the COMMIT
 * PREPAREDs seen so far (sweep_target) are queued too.
 */
static bool
aw_wait_loop(AwQueue *q, uint64 target, bool whole_queue, uint64 sweep_target,
			 int64 timeout_ms)
{
	TimestampTz start = GetCurrentTimestamp();
	bool		have_target = !whole_queue;
	bool		nudged = false;

	ConditionVariablePrepareToSleep(&q->applied_cv);
	for (;;)
	{
		Latch	   *latch;
		bool		no_worker;
		bool		rebound;
		long		sleep_ms = 1000;

		LWLockAcquire(&q->lock, LW_EXCLUSIVE);
		rebound = (q->dboid != MyDatabaseId);	/* emptied, given elsewhere */
		latch = q->worker_latch;
		no_worker = (q->worker_pid == 0);
		LWLockRelease(&q->lock);
		if (rebound)
			return true;

		if (!have_target && pg_atomic_read_u64(&q->sweeps_done) >= sweep_target)
		{
			target = aw_queue_last_write_id(q);
			have_target = true;
		}
		if (have_target && pg_atomic_read_u64(&q->applied_write_id) >= target)
			return true;

		if (timeout_ms >= 0)
		{
			long		secs;
			int			usecs;
			int64		left;

			TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
			left = timeout_ms - ((int64) secs * 1000 + usecs / 1000);
			if (left <= 0)
				return false;
			sleep_ms = Min(sleep_ms, (long) left);
		}
		if (no_worker)
			aw_worker_ensure(q);
		else if (!nudged && latch != NULL)
		{
			/* The worker applies at once while someone flushes. */
			SetLatch(latch);
			nudged = true;
		}
		if (ConditionVariableTimedSleep(&q->applied_cv, sleep_ms,
										PG_WAIT_EXTENSION))
			aw_check_worker_blocked(q, "its asyncwrite writes to be applied");
	}
}

/*
 * Sleep until every write id <= target of this database is applied or
 * failed (target 0: everything queued, see aw_wait_loop).  Returns false if
 * timeout_ms (-1: none) passes first.
 */
bool
aw_wait_applied(AwQueue *q, uint64 target, int64 timeout_ms)
{
	volatile bool done = false;
	uint64		sweep_target = pg_atomic_read_u64(&q->sweeps_requested);

	if (!aw_waiter_cleanup_registered)
	{
		before_shmem_exit(aw_waiter_cleanup, (Datum) 0);
		aw_waiter_cleanup_registered = true;
	}
	pg_atomic_fetch_add_u32(&q->flush_waiters, 1);
	aw_waiting_on = q;
	PG_TRY();
	{
		done = aw_wait_loop(q, target, target == 0, sweep_target, timeout_ms);
	}
	PG_FINALLY();
	{
		ConditionVariableCancelSleep();
		aw_waiting_on = NULL;
		pg_atomic_fetch_sub_u32(&q->flush_waiters, 1);
	}
	PG_END_TRY();
	return done;
}

/* asyncwrite.flush(timeout interval): wait for everything queued so far. */
Datum
aw_flush(PG_FUNCTION_ARGS)
{
	int64		timeout_ms = aw_timeout_ms(fcinfo, 0);
	AwQueue    *q = aw_queue_lookup(MyDatabaseId);
	int			pending = aw_xact_pending_count();

	if (pending > 0)
		ereport(NOTICE,
				(errmsg("asyncwrite.flush() does not wait for the %d writes this transaction queues when it commits", pending),
				 errhint("Call asyncwrite.flush() after COMMIT to wait for them.")));
	if (q == NULL)
		PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(aw_wait_applied(q, 0, timeout_ms));
}

/* asyncwrite.wait(write_id bigint, timeout interval): wait for one write. */
Datum
aw_wait(PG_FUNCTION_ARGS)
{
	int64		write_id;
	int64		timeout_ms = aw_timeout_ms(fcinfo, 1);
	AwQueue    *q = aw_queue_lookup(MyDatabaseId);
	uint64		last;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("write_id must not be null")));
	write_id = PG_GETARG_INT64(0);
	last = q ? aw_queue_last_write_id(q) : 0;
	if (write_id <= 0 || (uint64) write_id > last)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("write id " INT64_FORMAT " was not issued in this database", write_id),
				 errdetail("The highest write id issued so far is " UINT64_FORMAT ".", last)));
	PG_RETURN_BOOL(aw_wait_applied(q, (uint64) write_id, timeout_ms));
}

/* Refuse pause/resume unless the caller owns the database. */
static void
aw_check_database_owner(const char *fn)
{
	if (!pg_database_ownercheck(MyDatabaseId, GetUserId()))
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

	for (;;)
	{
		q = aw_queue_bind(MyDatabaseId);
		LWLockAcquire(&q->lock, LW_EXCLUSIVE);
		if (q->dboid == MyDatabaseId)
			break;
		LWLockRelease(&q->lock);	/* given to another database meanwhile */
	}
	q->paused = paused;
	latch = q->worker_latch;
	pending = q->head != pg_atomic_read_u64(&q->tail);
	LWLockRelease(&q->lock);
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
