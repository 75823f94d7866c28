/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		Start and stop the apply workers.  A database's worker is started
 *		lazily, by the first backend that queues a write there or waits for
 *		its writes, as a dynamic background worker that claims its queue
 *		itself (so no lock is held while registering); a launcher started
 *		with the server starts workers for queues restored from the save
 *		file.  A worker is stopped by SIGTERM, which is die in a worker: at
 *		shutdown, and from database DDL and DROP EXTENSION through its
 *		queue (aw_queue_terminate_worker).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"

#include "launcher.h"

/* How long a requested worker may take to start before we ask again. */
#define AW_LAUNCH_TIMEOUT_MS	10000

/* How long we wait for an idle worker to leave a slot another database needs. */
#define AW_EVICT_TIMEOUT_MS		10000

bool		aw_is_worker = false;

/* The queue this process applies, as a worker. */
static AwQueue *aw_my_queue = NULL;

/* Register a dynamic worker for a queue's database. */
static void
aw_worker_launch(AwQueue *q, Oid dboid)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "asyncwrite");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, AW_WORKER_MAIN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "asyncwrite worker for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "asyncwrite worker");
	worker.bgw_main_arg = Int32GetDatum((int32) aw_queue_slot(q));
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
	Oid			dboid;

	if (aw_queue_start_launch(q, AW_LAUNCH_TIMEOUT_MS, &dboid))
		aw_worker_launch(q, dboid);
}

/*
 * Ask the queue's worker to exit and wait until it has, up to timeout_ms.
 * The caller holds the queue first if no new worker may start meanwhile.
 */
bool
aw_worker_stop(AwQueue *q, int timeout_ms)
{
	TimestampTz start = GetCurrentTimestamp();
	ConditionVariable *cv = aw_queue_cv(q, AW_CV_WORKER);
	bool		gone = false;

	ConditionVariablePrepareToSleep(cv);
	for (;;)
	{
		gone = aw_queue_terminate_worker(q);
		if (gone || TimestampDifferenceExceeds(start, GetCurrentTimestamp(),
											   timeout_ms))
			break;
		(void) ConditionVariableTimedSleep(cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return gone;
}

/* Error cleanup of an eviction: release the slot held for it. */
static void
aw_launcher_unhold(int code, Datum arg)
{
	aw_queue_release_hold((AwQueue *) DatumGetPointer(arg));
}

/*
 * The queue of a database, binding a slot to it if it has none.  When every
 * slot is taken but one only by an idle worker (its queue empty and not
 * paused), that worker is stopped and its slot handed over: only databases
 * with queued or paused writes keep a slot.
 */
AwQueue *
aw_launcher_bind(Oid dboid)
{
	for (volatile int attempt = 0; attempt < 3; attempt++)
	{
		AwQueue    *idle;
		AwQueue    *q = aw_queue_bind(dboid, &idle, false);

		if (q != NULL)
			return q;

		/* However this backend leaves the wait, the hold goes with it. */
		PG_ENSURE_ERROR_CLEANUP(aw_launcher_unhold, PointerGetDatum(idle));
		{
			(void) aw_worker_stop(idle, AW_EVICT_TIMEOUT_MS);
		}
		PG_END_ENSURE_ERROR_CLEANUP(aw_launcher_unhold, PointerGetDatum(idle));
		q = aw_queue_take_over(idle, dboid);
		if (q != NULL)
			return q;
		/* A write arrived meanwhile: its database needs its worker again. */
		aw_worker_ensure(idle);
		CHECK_FOR_INTERRUPTS();
	}
	/* The idle slots kept filling up again: the usual error, or a slot. */
	return aw_queue_bind(dboid, NULL, false);
}

/* before_shmem_exit in a worker: give up the queue if it still owns it. */
static void
aw_worker_release(int code, Datum arg)
{
	if (aw_my_queue != NULL)
		aw_queue_release_worker(aw_my_queue);
}

/*
 * In a worker that claimed its queue: note it, and release it when the
 * process exits, however it exits.
 */
void
aw_worker_attach(AwQueue *q)
{
	aw_is_worker = true;
	aw_my_queue = q;
	before_shmem_exit(aw_worker_release, (Datum) 0);
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
	for (int i = 0; i < aw_queue_count(); i++)
	{
		AwQueue    *q = aw_queue_at(i);
		AwQueueState s;

		aw_queue_read_state(q, &s);
		if (s.dboid != InvalidOid && s.head != s.tail)
			aw_worker_ensure(q);
	}
	proc_exit(0);
}
