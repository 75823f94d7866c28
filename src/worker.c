/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The apply worker of one database: started lazily by the first
 *		backend that queues a write there (launcher.c), it waits on its
 *		latch, takes published entries from its queue in order, has them
 *		applied in batches (apply.c) and advances the queue's tail and
 *		applied mark.  It exits when idle for worker_idle_timeout, and on
 *		SIGTERM: at shutdown, when database DDL or DROP EXTENSION stops it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "launcher.h"
#include "wal.h"

/* How often a worker looks again at a database that allows no connections. */
#define AW_CLOSED_RETRY_MS	5000

/* How often, at most, the worker moves its replication slot forward. */
#define AW_SLOT_ADVANCE_MS	1000

/*
 * Longest wait, while an urgent write waits, for an entry ahead of it to be
 * published (its publisher wakes the worker anyway: see aw_submit_wake).
 */
#define AW_URGENT_POLL_MS	2

/*
 * Samples of (WAL insert position, next write id), oldest first, taken
 * under the queue's lock (aw_queue_sample): once every id below a sample's
 * next id is done, no durable write logged before its position is needed.
 */
#define AW_MAX_SAMPLES	64
typedef struct AwSample
{
	XLogRecPtr	lsn;
	uint64		next_id;
} AwSample;

static AwSample aw_samples[AW_MAX_SAMPLES];
static int	aw_nsamples = 0;
static XLogRecPtr aw_slot_moved_to = InvalidXLogRecPtr;
static TimestampTz aw_slot_moved_at = 0;

/*
 * Take a sample before a batch.  When there are too many, every other one
 * goes, the oldest always kept: it is the next to become usable however far
 * the worker lags, so the slot keeps moving.
 */
static void
aw_worker_sample(AwQueue *q)
{
	bool		empty;

	if (aw_nsamples == AW_MAX_SAMPLES)
	{
		int			kept = 0;

		for (int i = 0; i < AW_MAX_SAMPLES; i += 2)
			aw_samples[kept++] = aw_samples[i];
		aw_nsamples = kept;
	}
	(void) aw_queue_sample(q, MyDatabaseId, &aw_samples[aw_nsamples].lsn,
						   &aw_samples[aw_nsamples].next_id, &empty);
	aw_nsamples++;
}

/*
 * The newest WAL position that is not needed once every write id up to
 * applied_id is done, or InvalidXLogRecPtr; with forget, the samples older
 * than it go.
 */
static XLogRecPtr
aw_worker_replay_point(uint64 applied_id, bool forget)
{
	int			best = -1;

	for (int i = 0; i < aw_nsamples; i++)
		if (aw_samples[i].next_id <= applied_id + 1)
			best = i;
	if (best < 0)
		return InvalidXLogRecPtr;
	if (forget && best > 0)
	{
		memmove(aw_samples, aw_samples + best, sizeof(AwSample) * (aw_nsamples - best));
		aw_nsamples -= best;
		best = 0;
	}
	return aw_samples[best].lsn;
}

/*
 * Move the database's replication slot forward to what the applied mark
 * allows (at most every AW_SLOT_ADVANCE_MS unless forced); with an empty
 * queue, to the WAL position of now.  Returns whether a move is still due.
 */
static bool
aw_worker_move_slot(AwQueue *q, bool force)
{
	XLogRecPtr	lsn;
	uint64		next_id;
	bool		empty;
	TimestampTz now = GetCurrentTimestamp();

	(void) aw_queue_sample(q, MyDatabaseId, &lsn, &next_id, &empty);
	if (!empty)
		lsn = aw_worker_replay_point(aw_queue_applied_write_id(q), true);
	if (XLogRecPtrIsInvalid(lsn) || lsn <= aw_slot_moved_to)
		return false;
	if (!force &&
		!TimestampDifferenceExceeds(aw_slot_moved_at, now, AW_SLOT_ADVANCE_MS))
		return true;
	aw_wal_advance_slot(MyDatabaseId, lsn);
	aw_slot_moved_to = lsn;
	aw_slot_moved_at = now;
	return false;
}

/*
 * Take up to batch_size published entries from the tail, apply them in one
 * transaction and release them.  Returns the number of entries consumed
 * (padding excluded), -1 when the oldest entry is not yet published, or
 * one of aw_apply_batch's refusals (AW_BATCH_*).
 */
static int
aw_worker_apply_batch(AwQueue *q)
{
	static AwApplyRow *rows = NULL;
	static int	rows_size = 0;
	AwQueueIter it;
	AwEntryHeader *hdr;
	uint64		tail;
	uint64		first_id;
	int			nrows = 0;
	uint64		napplied = 0;
	uint64		nfailed = 0;
	int			handled;
	char		activity[64];

	if (rows_size < aw_batch_size)
	{
		if (rows)
			pfree(rows);
		rows = MemoryContextAlloc(TopMemoryContext,
								  sizeof(AwApplyRow) * aw_batch_size);
		rows_size = aw_batch_size;
	}

	aw_queue_iter_begin(q, &it);
	tail = it.pos;
	first_id = it.write_id + 1;
	while (nrows < aw_batch_size && (hdr = aw_queue_iter_next(&it)) != NULL)
	{
		if (hdr->state == AW_ENTRY_READY)
		{
			rows[nrows].hdr = hdr;
			rows[nrows].write_id = it.write_id;
			rows[nrows].end_pos = it.pos;
			nrows++;
			/* An urgent write ends its batch: it is visible soonest. */
			if (hdr->flags & AW_FLAG_URGENT)
				break;
		}
	}
	if (it.pos == tail)
		return -1;

	if (nrows == 0)
	{
		/* Only skipped entries (aborted transactions) and padding. */
		aw_queue_consume(q, it.pos, it.write_id);
		return (int) (it.write_id + 1 - first_id);
	}

	aw_queue_batch_begin(q, it.pos, it.write_id);
	snprintf(activity, sizeof(activity), "applying %d queued writes", nrows);
	pgstat_report_activity(STATE_RUNNING, activity);
	aw_worker_sample(q);
	handled = aw_apply_batch(q, rows, nrows, it.pos, it.write_id,
							 aw_worker_replay_point(it.write_id, false),
							 &napplied, &nfailed);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (handled < 0)
	{
		/* Refused: nothing applied (see aw_apply_batch). */
		aw_queue_batch_end(q);
		return handled;
	}
	aw_queue_batch_end(q);
	pgstat_report_stat(false);
	if (handled < nrows)
	{
		/* Stuck at rows[handled]: what came before it is released already. */
		return (int) (rows[handled].write_id - first_id);
	}
	return (int) (it.write_id + 1 - first_id);
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
 * Whether a transaction in progress creates or drops the extension: its
 * pg_extension row is then seen by a dirty snapshot, though not by ours.
 */
static bool
aw_extension_in_flux(void)
{
	SnapshotData dirty;
	ScanKeyData key;
	Relation	rel;
	SysScanDesc scan;
	bool		found;

	StartTransactionCommand();
	InitDirtySnapshot(dirty);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("asyncwrite"));
	rel = table_open(ExtensionRelationId, AccessShareLock);
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, &dirty, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return found;
}

/*
 * The extension is not there.  While a transaction in progress creates
 * (or drops) it, leave the writes queued and exit 1 so that we are started
 * again.  Else it is gone, whatever dropped it: its writes can no longer be
 * applied nor recorded, so they are discarded, with a WARNING saying how
 * many; writes still being committed make us exit 1 to discard them later.
 */
static void
aw_worker_leave_without_extension(AwQueue *q)
{
	AwQueueState s;

	if (aw_extension_in_flux())
		proc_exit(1);

	/* Its durable writes can no longer be applied: nothing to keep or read. */
	(void) aw_wal_drop_slot(MyDatabaseId);
	if (aw_queue_recovering(q))
		(void) aw_queue_rebuild(q, aw_queue_startup_ceiling(), 0, 0, NULL, NULL, 0);
	aw_worker_discard(q);
	aw_queue_read_state(q, &s);
	if (s.head != s.tail)
		proc_exit(1);
	/* A pause belonged to the extension that is gone. */
	if (s.paused)
	{
		Latch	   *latch;
		bool		pending;

		(void) aw_queue_set_paused(q, MyDatabaseId, false, &latch, &pending);
	}
	proc_exit(0);
}

/*
 * Apply the writes of committed prepared transactions, then mark the
 * requests seen so far as done: flush() waits for that before it notes
 * what to wait for.
 */
static void
aw_worker_sweep(AwQueue *q)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	AwQueueState s;

	aw_queue_read_state(q, &s);

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
	aw_queue_sweep_done(q, s.sweeps_requested);
}

/*
 * After a restart: read the database's durable writes above the applied
 * mark back from the WAL into the queue, before producers get new ids.
 */
static void
aw_worker_recover(AwQueue *q)
{
	uint64		applied_id;
	XLogRecPtr	replay_from;
	bool		have_mark;

	pgstat_report_activity(STATE_RUNNING, "recovering durable writes from the WAL");
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	have_mark = aw_mark_read(&applied_id, &replay_from);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	(void) aw_wal_recover(q, applied_id, replay_from, have_mark);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * The worker's lock_timeout: asyncwrite.apply_lock_timeout bounds how long
 * a write waits for a lock before it fails as a transient error.
 */
static void
aw_worker_set_lock_timeout(void)
{
	char		value[32];

	snprintf(value, sizeof(value), "%d", aw_apply_lock_timeout_ms);
	SetConfigOption("lock_timeout", value, PGC_SUSET, PGC_S_SESSION);
}

/*
 * Main loop of a database's apply worker.  SIGTERM (shutdown, database
 * DDL, DROP EXTENSION, pg_terminate_backend) is die: the worker exits at
 * the next CHECK_FOR_INTERRUPTS, also from a lock wait; the batch in
 * flight rolls back and stays queued for the next worker or the save file.
 */
void
aw_worker_main(Datum arg)
{
	Oid			dboid;
	AwQueue    *q;
	AwQueueState s;
	TimestampTz idle_since = GetCurrentTimestamp();
	long		blocked_ms = 1;
	bool		closed = false;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* Claim the queue, unless it moved on or another worker owns it. */
	q = aw_queue_at(DatumGetInt32(arg));
	if (q == NULL || !aw_queue_claim(q, dboid))
		proc_exit(0);
	aw_worker_attach(q);

	aw_role_note_startup_defaults();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, BGWORKER_BYPASS_ALLOWCONN);
	pgstat_report_appname("asyncwrite worker");

	/*
	 * The worker's own statements (dead letters, sweeps) run with a fixed,
	 * safe search_path and plain READ COMMITTED; writes run with their role's
	 * search_path (apply_role.c).
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_SESSION);
	aw_worker_set_lock_timeout();

	if (!aw_extension_exists())
		aw_worker_leave_without_extension(q);
	if (aw_queue_recovering(q))
		aw_worker_recover(q);
	aw_worker_sweep(q);

	for (;;)
	{
		long		timeout = (long) aw_idle_timeout_s * 1000L;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			aw_worker_set_lock_timeout();
			aw_role_reload_defaults();
		}

		aw_queue_read_state(q, &s);
		if (aw_queue_sweep_due(q))
		{
			aw_worker_sweep(q);
			continue;
		}
		now = GetCurrentTimestamp();

		if (s.head != s.tail && !s.paused)
		{
			/* Cheap reasons to apply now first; the oldest entry's age last. */
			bool		apply_now = s.flush_waiters > 0 ||
			s.urgent_write_id > s.applied_write_id ||
			s.last_write_id - s.applied_write_id >= (uint64) aw_batch_size;
			TimestampTz oldest = apply_now ? 0 : aw_queue_oldest_enqueued_at(q);
			TimestampTz due = TimestampTzPlusMilliseconds(oldest, aw_flush_interval_ms);

			if (apply_now || oldest == 0 || due <= now)
			{
				int			done = aw_worker_apply_batch(q);

				if (done >= 0)
				{
					(void) aw_worker_move_slot(q, false);
					idle_since = GetCurrentTimestamp();
					blocked_ms = 1;
					if (closed)
					{
						aw_queue_set_closed(q, false);
						closed = false;
					}
					continue;
				}
				if (done == AW_BATCH_NO_EXTENSION)
					aw_worker_leave_without_extension(q);
				if (done == AW_BATCH_CLOSED)
				{
					/* Respect ALLOW_CONNECTIONS false: look again later. */
					if (!closed)
						ereport(LOG,
								(errmsg("asyncwrite does not apply the writes queued in database %u while it does not allow connections",
										MyDatabaseId)));
					aw_queue_set_closed(q, true);
					closed = true;
					blocked_ms = AW_CLOSED_RETRY_MS;
				}

				/*
				 * Nothing applied: the oldest entry is a committing
				 * transaction's, published when its commit is visible, or the
				 * batch was refused.  Poll, backing off up to flush_interval.
				 */
				timeout = blocked_ms;
				blocked_ms = Min(blocked_ms * 2, Max(1, aw_flush_interval_ms));
				/* An urgent write waits: its publisher wakes us, or we look. */
				if (s.urgent_write_id > s.applied_write_id)
					timeout = Min(timeout, AW_URGENT_POLL_MS);
			}
			else
				timeout = Max(1, (long) ((due - now) / 1000));
		}
		else if (s.head == s.tail)
		{
			long		idle_ms = (long) ((now - idle_since) / 1000);

			if (idle_ms >= timeout)
			{
				/* Give up the queue only if it is still empty. */
				(void) aw_worker_move_slot(q, true);
				if (aw_queue_release_if_empty(q))
					break;
				continue;
			}
			timeout -= idle_ms;
			/* Nothing queued: the slot need keep no WAL from before now. */
			if (aw_worker_move_slot(q, false))
				timeout = Min(timeout, AW_SLOT_ADVANCE_MS);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	proc_exit(0);
}
