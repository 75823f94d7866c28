/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The apply worker of one database: started lazily by the first
 *		backend that queues a write there, it waits on its latch, takes
 *		published entries from its queue in order, applies them in batches
 *		and advances the queue's tail and applied mark.  Also the launcher,
 *		which starts workers for queues restored at server start.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "asyncwrite.h"

/* How long a requested worker may take to start before we ask again. */
#define AW_LAUNCH_TIMEOUT_MS	10000

bool		aw_is_worker = false;
static volatile sig_atomic_t aw_got_sigterm = false;
static AwQueue *aw_my_queue = NULL;

/* SIGTERM: finish applying what is queued, then exit. */
static void
aw_worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	aw_got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* Register a dynamic worker for a queue's database. */
void
aw_worker_launch(AwQueue *q)
{
	BackgroundWorker worker;
	Oid			dboid = q->dboid;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "asyncwrite");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "aw_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "asyncwrite worker for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "asyncwrite worker");
	worker.bgw_main_arg = Int32GetDatum((int32) (q - aw_control->queues));
	memcpy(worker.bgw_extra, &dboid, sizeof(Oid));
	worker.bgw_notify_pid = 0;

	if (!RegisterDynamicBackgroundWorker(&worker, NULL))
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the asyncwrite worker for this database"),
				 errdetail("The writes stay queued; starting the worker is tried again in %d seconds.",
						   AW_LAUNCH_TIMEOUT_MS / 1000),
				 errhint("Increase max_worker_processes.")));
}

/*
 * Start the queue's worker unless one runs or was requested recently.  No
 * lock is held while registering: the new worker claims the queue itself.
 */
void
aw_worker_ensure(AwQueue *q)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		launch = false;

	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	if (q->dboid != InvalidOid && q->worker_pid == 0 && !q->hold &&
		(!q->launching ||
		 TimestampDifferenceExceeds(q->launch_time, now, AW_LAUNCH_TIMEOUT_MS)))
	{
		q->launching = true;
		q->launch_time = now;
		launch = true;
	}
	LWLockRelease(&q->lock);
	if (launch)
		aw_worker_launch(q);
}

/*
 * Ask the queue's worker to exit and wait until it has, up to timeout_ms.
 * The caller sets q->hold first if no new worker may start meanwhile.
 */
bool
aw_worker_stop(AwQueue *q, int timeout_ms)
{
	TimestampTz start = GetCurrentTimestamp();
	bool		gone = false;

	ConditionVariablePrepareToSleep(&q->worker_cv);
	for (;;)
	{
		Latch	   *latch;

		LWLockAcquire(&q->lock, LW_EXCLUSIVE);
		gone = (q->worker_pid == 0);
		if (!gone)
			q->exit_requested = true;
		latch = q->worker_latch;
		LWLockRelease(&q->lock);
		if (gone || TimestampDifferenceExceeds(start, GetCurrentTimestamp(),
											   timeout_ms))
			break;
		if (latch)
			SetLatch(latch);
		(void) ConditionVariableTimedSleep(&q->worker_cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return gone;
}

/*
 * Leave at once, from inside a batch if need be, when database DDL or DROP
 * EXTENSION asks us to, or at shutdown: the batch's transaction aborts and
 * its writes stay queued for the next worker (or the save file).
 */
void
aw_worker_check_exit(void)
{
	bool		exit_requested;

	if (aw_my_queue == NULL)
		return;
	LWLockAcquire(&aw_my_queue->lock, LW_EXCLUSIVE);
	exit_requested = aw_my_queue->exit_requested;
	LWLockRelease(&aw_my_queue->lock);
	if (exit_requested || aw_got_sigterm)
		proc_exit(1);
}

/* before_shmem_exit: give up the queue if this process still owns it. */
static void
aw_worker_release(int code, Datum arg)
{
	AwQueue    *q = aw_my_queue;

	if (q == NULL)
		return;
	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	if (q->worker_pid == MyProcPid)
	{
		q->worker_pid = 0;
		q->worker_latch = NULL;
		/* An orderly exit has aborted any batch it did not release. */
		pg_atomic_write_u32(&q->applying, 0);
	}
	LWLockRelease(&q->lock);
	ConditionVariableBroadcast(&q->worker_cv);
	ConditionVariableBroadcast(&q->applied_cv);
}

/*
 * Take up to batch_size published entries from the tail, apply them in one
 * transaction and release them.  Returns the number of entries consumed
 * (padding excluded), or -1 when the oldest entry is not yet published.
 */
static int
aw_worker_apply_batch(AwQueue *q)
{
	static AwApplyRow *rows = NULL;
	static int	rows_size = 0;
	uint64		tail = pg_atomic_read_u64(&q->tail);
	uint64		first_id = pg_atomic_read_u64(&q->applied_write_id) + 1;
	uint64		id = first_id;
	uint64		head;
	uint64		pos = tail;
	int			nrows = 0;
	uint64		napplied = 0;
	uint64		nfailed = 0;
	int			handled = 0;

	if (rows_size < aw_batch_size)
	{
		if (rows)
			pfree(rows);
		rows = MemoryContextAlloc(TopMemoryContext,
								  sizeof(AwApplyRow) * aw_batch_size);
		rows_size = aw_batch_size;
	}

	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	head = q->head;
	LWLockRelease(&q->lock);

	while (pos < head && nrows < aw_batch_size)
	{
		AwEntryHeader *hdr = aw_queue_entry_at(q, pos, &pos);

		if (pos >= head)
			break;
		if (hdr->state == AW_ENTRY_RESERVED)
			break;
		/* Read the entry only after seeing it published. */
		pg_read_barrier();
		if (hdr->kind != AW_KIND_PAD)
		{
			if (hdr->state == AW_ENTRY_READY)
			{
				rows[nrows].hdr = hdr;
				rows[nrows].write_id = id;
				rows[nrows].end_pos = pos + hdr->length;
				nrows++;
			}
			id++;
		}
		pos += hdr->length;
	}
	if (pos == tail)
		return -1;

	if (nrows > 0)
	{
		char		activity[64];

		/*
		 * Publish the batch's extent before applying it: if we die between
		 * its commit and the release below, the save at shutdown skips it
		 * rather than applying it twice.
		 */
		pg_atomic_write_u64(&q->batch_end, pos);
		pg_atomic_write_u64(&q->batch_last_id, id - 1);
		pg_write_barrier();
		pg_atomic_write_u32(&q->applying, 1);
		snprintf(activity, sizeof(activity), "applying %d queued writes", nrows);
		pgstat_report_activity(STATE_RUNNING, activity);
		handled = aw_apply_batch(q, rows, nrows, &napplied, &nfailed);
		pgstat_report_activity(STATE_IDLE, NULL);
		pg_atomic_add_fetch_u64(&q->applied, napplied);
		pg_atomic_add_fetch_u64(&q->failed, nfailed);
		pg_atomic_add_fetch_u64(&q->batches, 1);
		pg_atomic_write_u64(&q->last_applied_at, (uint64) GetCurrentTimestamp());
	}
	if (handled < nrows)
	{
		/* Stuck at rows[handled]: what came before it is released already. */
		pg_atomic_write_u32(&q->applying, 0);
		return (int) (rows[handled].write_id - first_id);
	}
	aw_queue_consume(q, pos, id - 1);
	pg_atomic_write_u32(&q->applying, 0);
	if (nrows > 0)
		pgstat_report_stat(false);
	return (int) (id - first_id);
}

/* Whether the asyncwrite extension exists in this database. */
static bool
aw_extension_exists(void)
{
	bool		exists;

	StartTransactionCommand();
	exists = OidIsValid(get_extension_oid("asyncwrite", true));
	CommitTransactionCommand();
	return exists;
}

/*
 * Drop what is queued for a database whose extension is gone; say how many
 * writes that was so that nothing disappears silently.
 */
static void
aw_worker_discard(AwQueue *q)
{
	uint64		discarded = aw_queue_discard(q);

	if (discarded > 0)
		ereport(WARNING,
				(errmsg("discarded " UINT64_FORMAT " queued asyncwrite writes", discarded),
				 errdetail("The asyncwrite extension was dropped from database %u.",
						   MyDatabaseId)));
}

/*
 * The extension is not there: discard the queue if a DROP EXTENSION is
 * known to have committed; otherwise (say, CREATE EXTENSION not committed
 * yet) leave the writes queued and exit 1 so that we are started again.
 */
static void
aw_worker_leave_without_extension(AwQueue *q)
{
	bool		dropped;

	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	dropped = q->extension_dropped;
	LWLockRelease(&q->lock);
	if (dropped)
	{
		aw_worker_discard(q);
		if (q->head != pg_atomic_read_u64(&q->tail))
			proc_exit(1);		/* writes still being committed: again later */
		LWLockAcquire(&q->lock, LW_EXCLUSIVE);
		q->extension_dropped = false;
		LWLockRelease(&q->lock);
		proc_exit(0);
	}
	proc_exit(q->head != pg_atomic_read_u64(&q->tail) ? 1 : 0);
}

/*
 * Queue the writes of committed prepared transactions, then mark the
 * requests seen so far as done: flush() waits for that before it notes
 * what to wait for.
 */
static void
aw_worker_sweep(AwQueue *q)
{
	uint64		requested = pg_atomic_read_u64(&q->sweeps_requested);
	MemoryContext oldcontext = CurrentMemoryContext;

	/*
	 * A sweep that fails leaves its rows in asyncwrite.prepared_writes for
	 * the next one (next COMMIT PREPARED or worker start) and lets the queue
	 * go on: it must not stop the worker in a loop.
	 */
	PG_TRY();
	{
		(void) aw_prepared_sweep();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(WARNING,
				(errmsg("could not apply the writes of committed prepared transactions"),
				 errdetail("They stay in asyncwrite.prepared_writes and are tried again at the next COMMIT PREPARED or worker start.")));
	}
	PG_END_TRY();
	pg_atomic_write_u64(&q->sweeps_done, requested);
	ConditionVariableBroadcast(&q->applied_cv);
}

/* Main loop of a database's apply worker. */
void
aw_worker_main(Datum arg)
{
	int			slot = DatumGetInt32(arg);
	Oid			dboid;
	AwQueue    *q;
	TimestampTz idle_since = GetCurrentTimestamp();
	int			exit_code = 0;
	long		blocked_ms = 1;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	aw_is_worker = true;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, aw_worker_sigterm);
	BackgroundWorkerUnblockSignals();

	if (aw_control == NULL || slot < 0 || slot >= aw_control->max_databases)
		proc_exit(0);
	q = &aw_control->queues[slot];

	/* Claim the queue, unless it moved on or another worker owns it. */
	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	if (q->dboid != dboid || q->worker_pid != 0 || q->hold)
	{
		if (q->dboid == dboid && q->worker_pid == 0)
			q->launching = false;
		LWLockRelease(&q->lock);
		proc_exit(0);
	}
	q->worker_pid = MyProcPid;
	q->worker_latch = MyLatch;
	q->launching = false;
	q->exit_requested = false;
	LWLockRelease(&q->lock);
	pg_atomic_write_u32(&q->applying, 0);
	aw_my_queue = q;
	before_shmem_exit(aw_worker_release, (Datum) 0);
	ConditionVariableBroadcast(&q->worker_cv);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, BGWORKER_BYPASS_ALLOWCONN);
	pgstat_report_appname("asyncwrite worker");

	/* Writes run with a fixed, safe search_path and plain READ COMMITTED. */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_SESSION);

	if (!aw_extension_exists())
		aw_worker_leave_without_extension(q);
	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	q->extension_dropped = false;
	LWLockRelease(&q->lock);
	aw_worker_sweep(q);

	for (;;)
	{

		bool		exit_requested;
		bool		paused;
		uint64		head;
		uint64		next_id;
		uint64		tail;
		long		timeout = (long) aw_idle_timeout_s * 1000L;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		LWLockAcquire(&q->lock, LW_EXCLUSIVE);
		exit_requested = q->exit_requested;
		paused = q->paused;
		head = q->head;
		next_id = q->next_write_id;
		LWLockRelease(&q->lock);
		if (!exit_requested &&
			pg_atomic_read_u64(&q->sweeps_requested) != pg_atomic_read_u64(&q->sweeps_done) &&
			pg_atomic_read_u64(&q->applied_write_id) >= pg_atomic_read_u64(&q->sweep_after_id))
		{
			aw_worker_sweep(q);
			continue;
		}
		tail = pg_atomic_read_u64(&q->tail);
		now = GetCurrentTimestamp();

		if (exit_requested)
		{
			/*
			 * DROP EXTENSION or database DDL: leave now.  Writes left behind
			 * make us exit 1, so the postmaster starts a worker again: it
			 * applies them if the DROP rolled back, discards them if it
			 * committed, and exits at once while database DDL holds the
			 * queue.
			 */
			if (!aw_extension_exists())
				aw_worker_leave_without_extension(q);
			exit_code = (q->head != pg_atomic_read_u64(&q->tail)) ? 1 : 0;
			break;
		}

		if (head != tail && !paused)
		{
			/* Cheap reasons to apply now first; the oldest entry's age last. */
			bool		apply_now = aw_got_sigterm ||
			next_id - 1 - pg_atomic_read_u64(&q->applied_write_id) >= (uint64) aw_batch_size ||
			pg_atomic_read_u32(&q->flush_waiters) > 0;
			TimestampTz oldest = apply_now ? 0 : aw_queue_oldest_enqueued_at(q);
			TimestampTz due = TimestampTzPlusMilliseconds(oldest, aw_flush_interval_ms);

			if (apply_now || oldest == 0 || due <= now)
			{
				if (aw_worker_apply_batch(q) >= 0)
				{
					idle_since = GetCurrentTimestamp();
					blocked_ms = 1;
					continue;
				}

				/*
				 * The oldest entry is a committing transaction's, published
				 * when its commit is visible: poll, backing off up to
				 * flush_interval.
				 */
				timeout = blocked_ms;
				blocked_ms = Min(blocked_ms * 2, Max(1, aw_flush_interval_ms));
			}
			else
				timeout = Max(1, (long) ((due - now) / 1000));
		}
		else if (aw_got_sigterm)
		{
			/* Stopping: exit 1 leaves the postmaster to restart us. */
			exit_code = (head != tail) ? 1 : 0;
			break;
		}
		else if (head == tail)
		{
			long		idle_ms = (long) ((now - idle_since) / 1000);

			if (idle_ms >= timeout)
			{
				bool		empty;

				/* Give up the queue only if it is still empty. */
				LWLockAcquire(&q->lock, LW_EXCLUSIVE);
				empty = (q->head == pg_atomic_read_u64(&q->tail));
				if (empty)
				{
					q->worker_pid = 0;
					q->worker_latch = NULL;
				}
				LWLockRelease(&q->lock);
				if (empty)
					break;
				continue;
			}
			timeout -= idle_ms;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	proc_exit(exit_code);
}

/* Register the launcher, which starts workers for restored queues. */
void
aw_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "asyncwrite");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "aw_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "asyncwrite launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "asyncwrite launcher");
	RegisterBackgroundWorker(&worker);
}

/* Launcher: start a worker for every queue that holds writes, then exit. */
void
aw_launcher_main(Datum arg)
{
	BackgroundWorkerUnblockSignals();
	for (int i = 0; aw_control != NULL && i < aw_control->max_databases; i++)
	{
		AwQueue    *q = &aw_control->queues[i];
		bool		pending;

		LWLockAcquire(&q->lock, LW_EXCLUSIVE);
		pending = q->dboid != InvalidOid && q->head != pg_atomic_read_u64(&q->tail);
		LWLockRelease(&q->lock);
		if (pending)
			aw_worker_ensure(q);
	}
	proc_exit(0);
}
