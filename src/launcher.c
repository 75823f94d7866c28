/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		Start and stop the apply workers.  A database's worker is started
 *		lazily, by the first backend that queues a write there or waits for
 *		its writes, as a dynamic background worker that claims its queue
 *		itself (so no lock is held while registering); a launcher started
 *		with the server starts workers for queues restored from the save
 *		file and for databases whose durable writes are to be read back
 *		from the WAL, and then keeps running: it moves the replication slots
 *		of databases with nothing queued and no worker forward, so they keep
 *		no WAL, and drops those of databases that are gone.  A worker is stopped by SIGTERM, which is die in a worker: at
 *		shutdown, and from database DDL and DROP EXTENSION through its
 *		queue (aw_queue_terminate_worker).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "launcher.h"
#include "wal.h"

/* How long a requested worker may take to start before we ask again. */
#define AW_LAUNCH_TIMEOUT_MS	10000

/* How long we wait for an idle worker to leave a slot another database needs. */
#define AW_EVICT_TIMEOUT_MS		10000

/* How often the launcher looks after the replication slots. */
#define AW_LAUNCHER_NAP_MS		10000

/* The most replication slots of asyncwrite the launcher looks after. */
#define AW_MAX_SLOTS			1024

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
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	/* Also after a crash, when durable writes must be read back. */
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "asyncwrite");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "aw_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "asyncwrite launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "asyncwrite launcher");
	RegisterBackgroundWorker(&worker);
}

/* Whether database dboid exists (the launcher reads shared catalogs only). */
static bool
aw_launcher_database_exists(Oid dboid)
{
	bool		exists;

	StartTransactionCommand();
	exists = SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dboid));
	CommitTransactionCommand();
	return exists;
}

/*
 * Start the workers of databases whose durable writes are still to be read
 * back from the WAL; forget those of databases that are gone.
 */
static void
aw_launcher_start_recovery(void)
{
	Oid			dboids[64];
	int			n = aw_queue_recovery_list(dboids, lengthof(dboids));

	for (int i = 0; i < n; i++)
	{
		AwQueue    *q;

		if (!aw_launcher_database_exists(dboids[i]))
		{
			(void) aw_wal_drop_slot(dboids[i]);
			aw_queue_recovery_forget(dboids[i]);
			continue;
		}
		/* No queue free now: the next look, or its first write, binds one. */
		q = aw_queue_bind(dboids[i], NULL, true);
		if (q != NULL)
			aw_worker_ensure(q);
	}
}

/*
 * Look after the replication slots: drop those of databases that are gone,
 * and move those of databases with nothing queued and no worker to the
 * WAL position of now (a queue bound later gives out ids, and logs, after
 * it); a running worker moves its own.
 */
static void
aw_launcher_keep_slots(void)
{
	Oid		   *dboids = palloc(sizeof(Oid) * AW_MAX_SLOTS);
	int			n = aw_wal_slot_databases(dboids, AW_MAX_SLOTS);

	for (int i = 0; i < n; i++)
	{
		AwQueue    *q;
		XLogRecPtr	lsn;

		if (!aw_launcher_database_exists(dboids[i]))
		{
			(void) aw_wal_drop_slot(dboids[i]);
			aw_queue_recovery_forget(dboids[i]);
			continue;
		}
		q = aw_queue_lookup(dboids[i]);
		if (q == NULL)
		{
			if (aw_queue_sample_unbound(dboids[i], &lsn))
				aw_wal_advance_slot(dboids[i], lsn);
		}
		else
		{
			AwQueueState s;
			uint64		next_id;
			bool		empty;

			aw_queue_read_state(q, &s);
			if (s.worker_pid == 0 &&
				aw_queue_sample(q, dboids[i], &lsn, &next_id, &empty) && empty)
				aw_wal_advance_slot(dboids[i], lsn);
		}
	}
	pfree(dboids);
}

/*
 * Note in the WAL the highest write id of each database whose queue gave
 * out ids since the last note, or holds writes not applied while a
 * checkpoint has passed its last note (aw_wal_note_ids): a promoted standby
 * whose WAL no longer has a backlog's messages knows their ids from the
 * newest note, which its restartpoints keep.  An idle server writes none.
 */
static void
aw_launcher_note_ids(void)
{
	static Oid *noted_db = NULL;
	static uint64 *noted_id = NULL;
	static XLogRecPtr noted_at = InvalidXLogRecPtr;
	int			nqueues = aw_queue_count();
	AwIdsNote  *notes = palloc0(sizeof(AwIdsNote) * nqueues);
	XLogRecPtr	redo = GetRedoRecPtr();
	int			n = 0;

	if (noted_db == NULL)
	{
		noted_db = MemoryContextAllocZero(TopMemoryContext, sizeof(Oid) * nqueues);
		noted_id = MemoryContextAllocZero(TopMemoryContext, sizeof(uint64) * nqueues);
	}
	for (int i = 0; i < nqueues; i++)
	{
		AwQueueState s;

		aw_queue_read_state(aw_queue_at(i), &s);
		if (s.dboid == InvalidOid || s.recovering || s.last_write_id == 0 ||
			(s.dboid == noted_db[i] && s.last_write_id == noted_id[i] &&
			 (s.applied_write_id >= s.last_write_id || redo <= noted_at)))
			continue;
		notes[n].dboid = noted_db[i] = s.dboid;
		notes[n].last_id = noted_id[i] = s.last_write_id;
		notes[n].ceiling = aw_queue_id_ceiling();
		n++;
	}
	if (n > 0)
		noted_at = aw_wal_note_ids(notes, n);
	pfree(notes);
}

/* On the launcher's exit: no latch for backends to set, nothing left owed. */
static void
aw_launcher_exit(int code, Datum arg)
{
	aw_queue_set_launcher_latch(NULL);
	if (aw_queue_unflushed_owed())
		XLogSetAsyncXactLSN(aw_queue_take_unflushed());
}

/*
 * Launcher: start a worker for every queue that holds writes and every
 * database with durable writes to recover, then, until shutdown, look after
 * the replication slots every AW_LAUNCHER_NAP_MS and have the WAL writer
 * flush the messages of durable writes that no commit record asked it to.
 */
void
aw_launcher_main(Datum arg)
{
	TimestampTz next_nap_end;
	TimestampTz owed_since = 0;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("asyncwrite launcher");

	/*
	 * Backends set our latch for messages owed a flush (aw_wal_flush), from
	 * now until we exit; those owed then are flushed on our way out.
	 */
	before_shmem_exit(aw_launcher_exit, (Datum) 0);
	aw_queue_set_launcher_latch(MyLatch);

	/*
	 * A promoted standby: its databases' durable writes are in the WAL it
	 * replayed, with no slot to say which; every database waits for this.
	 */
	if (aw_queue_failover_pending())
	{
		Oid			dboids[1024];
		volatile int n = -1;
		XLogRecPtr	start = InvalidXLogRecPtr;
		int			kept = 0;

		PG_TRY();
		{
			n = aw_wal_scan_databases(dboids, lengthof(dboids), &start);
		}
		PG_CATCH();
		{
			EmitErrorReport();
			FlushErrorState();
			n = -1;
		}
		PG_END_TRY();

		/*
		 * Each database found gets its slot now, keeping the WAL scanned: a
		 * crash before its worker recovers finds the slot at restart.  If the
		 * WAL could not be read, every database still recovers when it is
		 * first bound.
		 */
		for (int i = 0; i < n; i++)
		{
			if (!aw_launcher_database_exists(dboids[i]))
				continue;
			aw_wal_keep_from(dboids[i], start);
			dboids[kept++] = dboids[i];
		}
		if (n >= 0)
			aw_queue_failover_done(dboids, kept);
		else
			ereport(WARNING,
					(errmsg("asyncwrite could not read the WAL to find the durable writes of the old primary"),
					 errdetail("Each database reads them back when its first write or flush binds its queue.")));
	}
	aw_launcher_start_recovery();
	for (int i = 0; i < aw_queue_count(); i++)
	{
		AwQueue    *q = aw_queue_at(i);
		AwQueueState s;

		aw_queue_read_state(q, &s);
		if (s.dboid != InvalidOid && s.head != s.tail)
			aw_worker_ensure(q);
	}

	/* The rest is done every AW_LAUNCHER_NAP_MS. */
	next_nap_end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   AW_LAUNCHER_NAP_MS);
	for (;;)
	{
		long		timeout;

		timeout = Max(0, (long) ((next_nap_end - GetCurrentTimestamp()) / 1000));
		aw_wal_nudge_writer(&owed_since, &timeout);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (GetCurrentTimestamp() < next_nap_end)
			continue;
		aw_launcher_start_recovery();
		aw_launcher_keep_slots();
		aw_launcher_note_ids();
		next_nap_end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   AW_LAUNCHER_NAP_MS);
	}
}
