/*-------------------------------------------------------------------------
 *
 * submit_wait.c
 *		Wait for queued writes to be applied: flush(), wait() and table DDL
 *		sleep here until the queue's applied mark passes what they wait for.
 *
 * Waiters sleep on the queue's "applied" condition variable, which the
 * worker broadcasts after each batch.  Condition-variable sleeps are
 * invisible to the deadlock detector, so every sleep has a timeout after
 * which the waiter re-checks the applied mark, that a worker runs, and
 * that the worker is not waiting for a lock the waiter holds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "utils/array.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

#include "launcher.h"
#include "submit.h"

/* The queue this backend counts itself a waiter of, for exit cleanup. */
static AwQueue *aw_waiting_on = NULL;
static bool aw_waiter_cleanup_registered = false;

/* before_shmem_exit: a FATAL exit skips PG_FINALLY; uncount ourselves. */
static void
aw_waiter_cleanup(int code, Datum arg)
{
	if (aw_waiting_on != NULL)
		aw_queue_count_waiter(aw_waiting_on, -1);
	aw_waiting_on = NULL;
}

/* The queue's worker's pid if it waits for a lock this backend holds, else 0. */
static pid_t
aw_worker_blocked_by_us(AwQueue *q)
{
	AwQueueState s;
	ArrayType  *blockers;
	Datum	   *elems;
	int			nelems;

	aw_queue_read_state(q, &s);
	if (s.worker_pid == 0)
		return 0;
	blockers = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids,
													  Int32GetDatum((int32) s.worker_pid)));
	deconstruct_array(blockers, INT4OID, 4, true, TYPALIGN_INT, &elems, NULL, &nelems);
	for (int i = 0; i < nelems; i++)
		if (DatumGetInt32(elems[i]) == MyProcPid)
			return s.worker_pid;
	return 0;
}

/*
 * Raise a deadlock error if the queue's worker waits for a lock this
 * backend holds: what we wait for could then never happen, and the
 * deadlock detector cannot see a condition-variable wait.
 */
void
aw_check_worker_blocked(AwQueue *q, const char *what)
{
	pid_t		pid = aw_worker_blocked_by_us(q);

	if (pid != 0)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
				 errmsg("deadlock detected"),
				 errdetail("This session waits for %s, but the asyncwrite worker (PID %d) waits for a lock this session holds.",
						   what, (int) pid),
				 errhint("Commit before waiting, or take the lock after asyncwrite.flush().")));
}

/*
 * The wait of aw_wait_applied(), between its bookkeeping.  With whole_queue,
 * the target is everything queued once the writes released by the COMMIT
 * PREPAREDs seen so far (sweep_target) are queued too.
 */
static bool
aw_wait_loop(AwQueue *q, uint64 target, bool whole_queue, uint64 sweep_target,
			 int64 timeout_ms, bool *blocked)
{
	TimestampTz start = GetCurrentTimestamp();
	bool		have_target = !whole_queue;
	bool		nudged = false;

	ConditionVariablePrepareToSleep(aw_queue_cv(q, AW_CV_APPLIED));
	for (;;)
	{
		AwQueueState s;
		long		sleep_ms = 1000;

		aw_queue_read_state(q, &s);
		if (s.dboid != MyDatabaseId)
			return true;		/* emptied, given to another database */

		/*
		 * Everything queued is known only once the writes to read back from
		 * the WAL are queued again: a recovering queue has no ids yet.
		 */
		if (!have_target && s.sweeps_done >= sweep_target && !s.recovering)
		{
			target = aw_queue_last_write_id(q);
			have_target = true;
		}
		if (have_target && aw_queue_applied_write_id(q) >= target)
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
		if (s.worker_pid == 0)
			aw_worker_ensure(q);
		else if (!nudged && s.worker_latch != NULL)
		{
			/* The worker applies at once while someone flushes. */
			SetLatch(s.worker_latch);
			nudged = true;
		}
		if (ConditionVariableTimedSleep(aw_queue_cv(q, AW_CV_APPLIED), sleep_ms,
										PG_WAIT_EXTENSION))
		{
			if (blocked == NULL)
				aw_check_worker_blocked(q, "queued asyncwrite writes to be applied");
			else if (aw_worker_blocked_by_us(q) != 0)
			{
				*blocked = true;
				return false;
			}
		}
	}
}

/*
 * Sleep until every write id <= target of this database is applied or
 * failed (target 0: everything queued, see aw_wait_loop).  Returns false if
 * timeout_ms (-1: none) passes first.  When the worker waits for a lock this
 * backend holds, the wait can never end: a deadlock error, or, when blocked
 * is given, false with *blocked set.
 */
bool
aw_wait_applied(AwQueue *q, uint64 target, int64 timeout_ms, bool *blocked)
{
	volatile bool done = false;
	AwQueueState s;

	aw_queue_read_state(q, &s);

	if (!aw_waiter_cleanup_registered)
	{
		before_shmem_exit(aw_waiter_cleanup, (Datum) 0);
		aw_waiter_cleanup_registered = true;
	}
	aw_queue_count_waiter(q, 1);
	aw_waiting_on = q;
	PG_TRY();
	{
		done = aw_wait_loop(q, target, target == 0, s.sweeps_requested,
							timeout_ms, blocked);
	}
	PG_FINALLY();
	{
		ConditionVariableCancelSleep();
		aw_waiting_on = NULL;
		aw_queue_count_waiter(q, -1);
	}
	PG_END_TRY();
	return done;
}
