/*-------------------------------------------------------------------------
 *
 * submit_queue.c
 *		Put writes into this database's queue: reserve their entries, fill
 *		and publish them, and wake or start the worker.  While the queue is
 *		full, asyncwrite.on_full decides: wait for space (up to
 *		full_timeout), fail, or have the caller write synchronously.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "launcher.h"
#include "submit.h"
#include "wal.h"

/* This backend's queue, revalidated at each reservation (it may rebind). */
static AwQueue *my_queue = NULL;

/*
 * The WAL of this transaction's non-transactional durable writes, flushed
 * when it ends (before the caller hears of their success; one flush serves
 * every such write of a statement) and, when it commits, waited for by the
 * synchronous standbys as its commit would be, unless synchronous_commit is
 * off.
 */
static XLogRecPtr aw_flush_lsn = InvalidXLogRecPtr;
static bool aw_flush_callback_registered = false;

/* Transaction callback: flush the logged writes as the transaction ends. */
static void
aw_submit_flush_callback(XactEvent event, void *arg)
{
	XLogRecPtr	lsn = aw_flush_lsn;

	if (event != XACT_EVENT_PRE_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PRE_PREPARE)
		return;
	aw_flush_lsn = InvalidXLogRecPtr;

	/*
	 * As a commit record is flushed: now, and, but not at abort (the error is
	 * reported without waiting), by the synchronous standbys (a transaction
	 * that only queued such writes has no commit record to wait for them);
	 * with synchronous_commit off, soon.
	 */
	aw_wal_flush(lsn, event != XACT_EVENT_ABORT);
}

/* Raise the error of a write that found its queue full. */
static void
aw_submit_full_error(bool timed_out)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("asyncwrite queue of database \"%s\" is full",
					get_database_name(MyDatabaseId)),
			 timed_out ?
			 errdetail("No space was freed within asyncwrite.full_timeout (%d ms).",
					   aw_full_timeout_ms) :
			 errdetail("asyncwrite.on_full is \"error\"."),
			 errhint("Check that the queue is not paused and that its worker runs (asyncwrite.stats); "
					 "increase asyncwrite.queue_size, or set asyncwrite.on_full to \"sync\" to write such rows at once.")));
}

/* Refuse nrows entries that take more than a quarter of the queue. */
void
aw_submit_too_large(Size len, int nrows)
{
	if (nrows == 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("row is too large for the asyncwrite queue"),
				 errdetail("The row needs %zu bytes; a queued row may use at most a quarter of asyncwrite.queue_size (%zu bytes).",
						   len, (Size) (aw_queue_capacity() / 4)),
				 errhint("Increase asyncwrite.queue_size, or set asyncwrite.on_full to \"sync\" to write such rows at once.")));
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("rows are too large for the asyncwrite queue"),
			 errdetail("The %d rows need %zu bytes; the rows of one call may use at most a quarter of asyncwrite.queue_size (%zu bytes).",
					   nrows, len, (Size) (aw_queue_capacity() / 4)),
			 errhint("Pass fewer rows per call, queue them transactionally, increase asyncwrite.queue_size, or set asyncwrite.on_full to \"sync\" to write such rows at once.")));
}

/*
 * Reserve len bytes for nentries entries in this database's queue (see
 * aw_queue_reserve), binding a queue first if need be.  While the queue is
 * full, on_full decides: wait on the "space" condition variable up to
 * full_timeout, waking the worker (or starting one), fail, or return NULL
 * so that the caller writes synchronously.  A wait that cannot end (the
 * worker waits for a lock this backend holds) is a deadlock error.
 */
static AwEntryHeader *
aw_submit_reserve(Size len, int nentries, int on_full, AwReservation *r)
{
	AwQueue    *q = my_queue;
	bool		sleeping = false;
	TimestampTz wait_start = 0;
	AwEntryHeader *entry = NULL;

	for (;;)
	{
		AwReserveResult res;

		if (q == NULL)
			q = my_queue = aw_launcher_bind(MyDatabaseId);
		/* Once per binding: ids above the applied mark (a failover's). */
		if (!aw_queue_ids_checked(q))
			(void) aw_queue_skip_ids(q, MyDatabaseId, aw_mark_peek());
		res = aw_queue_reserve(q, len, nentries, r);
		if (res == AW_RESERVE_OK)
		{
			entry = r->entry;
			break;
		}
		if (res == AW_RESERVE_REBOUND)
		{
			/* The slot was given to another database since we looked. */
			q = my_queue = NULL;
			continue;
		}
		if (res == AW_RESERVE_RECOVERING)
		{
			/*
			 * The worker reads the database's durable writes back from the
			 * WAL after a restart; new ids follow theirs.  Wait for it.
			 */
			if (r->need_worker)
				aw_worker_ensure(q);
			ConditionVariablePrepareToSleep(aw_queue_cv(q, AW_CV_WORKER));
			if (aw_queue_recovering(q))
				(void) ConditionVariableTimedSleep(aw_queue_cv(q, AW_CV_WORKER),
												   1000, PG_WAIT_EXTENSION);
			ConditionVariableCancelSleep();
			CHECK_FOR_INTERRUPTS();
			continue;
		}

		/* Full. */
		if (aw_is_worker)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("asyncwrite queue of database \"%s\" is full", get_database_name(MyDatabaseId)),
					 errdetail("A write queued while asyncwrite applies queued writes cannot wait for room: the apply worker would wait for itself."),
					 errhint("Increase asyncwrite.queue_size.")));
		if (on_full == AW_ON_FULL_ERROR)
			aw_submit_full_error(false);
		if (on_full == AW_ON_FULL_SYNC)
			break;
		if (r->latch)
			SetLatch(r->latch);
		else if (r->need_worker)
			aw_worker_ensure(q);
		if (!sleeping)
		{
			ConditionVariablePrepareToSleep(aw_queue_cv(q, AW_CV_SPACE));
			sleeping = true;
			wait_start = GetCurrentTimestamp();
		}
		else
		{
			if (TimestampDifferenceExceeds(wait_start, GetCurrentTimestamp(),
										   aw_full_timeout_ms))
			{
				ConditionVariableCancelSleep();
				aw_submit_full_error(true);
			}
			if (ConditionVariableTimedSleep(aw_queue_cv(q, AW_CV_SPACE),
											Min(1000, Max(1, aw_full_timeout_ms)),
											PG_WAIT_EXTENSION))
				aw_check_worker_blocked(q, "room in the asyncwrite queue");
		}
		CHECK_FOR_INTERRUPTS();
	}
	if (sleeping)
		ConditionVariableCancelSleep();
	return entry;
}

/*
 * Queue n writes now, as one block of consecutive ids, published at once,
 * and set *write_id to the last one's id.  Returns false, queueing nothing,
 * when the queue has no room for the block (or it is larger than a quarter
 * of the queue) and asyncwrite.on_full is "sync".
 */
bool
aw_submit_now(int n, const AwWriteSpec *w, uint64 *write_id)
{
	AwReservation r;
	AwEntryHeader **entries = palloc(sizeof(AwEntryHeader *) * n);
	uint64		urgent_id = 0;

	/* What may fail is done before the entries are reserved. */
	if ((w[0].flags & AW_FLAG_DURABLE) && !aw_flush_callback_registered)
	{
		RegisterXactCallback(aw_submit_flush_callback, NULL);
		aw_flush_callback_registered = true;
	}
	if (!aw_submit_reserve_many(n, w, entries, &r))
		return false;

	/*
	 * Durable writes are logged (and flushed) before they are published: the
	 * worker never applies a write whose WAL may still be lost.  The entries
	 * are reserved: should logging fail, they are published as skipped.
	 */
	if (w[0].flags & AW_FLAG_DURABLE)
	{
		uint64	   *ids = palloc(sizeof(uint64) * n);
		XLogRecPtr	lsn = InvalidXLogRecPtr;

		for (int i = 0; i < n; i++)
			ids[i] = r.first_id + i;
		PG_TRY();
		{
			lsn = aw_wal_log(entries, ids, n, false);
		}
		PG_CATCH();
		{
			for (int i = 0; i < n; i++)
				aw_queue_publish(entries[i], AW_ENTRY_SKIPPED);
			aw_queue_reservation_done();
			PG_RE_THROW();
		}
		PG_END_TRY();
		aw_flush_lsn = Max(aw_flush_lsn, lsn);
	}

	/* Nothing below may fail: the entries are reserved and must be published. */
	for (int i = 0; i < n; i++)
	{
		aw_queue_publish(entries[i], AW_ENTRY_READY);
		if (w[i].flags & AW_FLAG_URGENT)
			urgent_id = r.first_id + i;
	}
	aw_queue_reservation_done();
	aw_submit_wake(&r, urgent_id);
	*write_id = r.first_id + n - 1;
	return true;
}

/*
 * Reserve the entries of several writes as one block, waiting for the
 * whole block to fit before reserving anything: a producer never waits for
 * space while it holds reserved entries (which the worker cannot pass).
 * Fills the entries, marked reserved; entries[i] receives each.  Returns
 * false, reserving nothing, when the queue has no room for the block (or
 * the block is larger than a quarter of it) and asyncwrite.on_full is
 * "sync": the caller writes them synchronously instead.
 */
bool
aw_submit_reserve_many(int n, const AwWriteSpec *writes,
					   AwEntryHeader **entries, AwReservation *r)
{
	Size		total = 0;
	char	   *block;
	TimestampTz now = GetCurrentTimestamp();

	aw_check_available();
	for (int i = 0; i < n; i++)
		total += aw_entry_size(writes[i].payload_len, writes[i].extra_len);
	if (total > aw_queue_capacity() / 4)
	{
		if (aw_on_full == AW_ON_FULL_SYNC)
			return false;
		aw_submit_too_large(total, n);
	}

	block = (char *) aw_submit_reserve(total, n, aw_on_full, r);
	if (block == NULL)
		return false;

	/* Nothing below may fail: the entries are reserved. */
	for (int i = 0; i < n; i++)
	{
		entries[i] = (AwEntryHeader *) block;
		aw_entry_fill(entries[i], &writes[i], now);
		block += entries[i]->length;
	}
	return true;
}

/*
 * After publishing, wake the worker or start one, as the reservation said:
 * the worker is woken only at the first write into an empty queue, at a
 * full batch, for an urgent write (urgent_id, the highest urgent one's id;
 * 0: none) or while one waits; otherwise flush_interval wakes it.
 */
void
aw_submit_wake(const AwReservation *r, uint64 urgent_id)
{
	bool		wake = r->wake;

	if (urgent_id != 0)
	{
		aw_queue_note_urgent(r->queue, urgent_id);
		wake = true;
	}

	/*
	 * An urgent write behind these entries waits for them: the worker, which
	 * found them not yet published, is told at once.
	 */
	else if (r->latch != NULL && !wake)
		wake = aw_queue_urgent_pending(r->queue);
	if (r->latch != NULL && wake)
		SetLatch(r->latch);
	else if (r->need_worker)
		aw_worker_ensure(r->queue);
}
