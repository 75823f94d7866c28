/*-------------------------------------------------------------------------
 *
 * submit_xact.c
 *		Transactional submission: a write made with asyncwrite.transactional
 *		on is kept in backend memory until its transaction commits, and
 *		dropped if the transaction or the savepoint around it rolls back.
 *
 * At XACT_EVENT_PRE_COMMIT every kept write gets its queue entry (an ERROR
 * there still aborts the transaction cleanly); at XACT_EVENT_COMMIT, when
 * the commit is durable and visible, the entries are published, so the
 * worker sees exactly the rows the transaction wrote (foreign keys to them
 * hold); at abort, entries already reserved are published as skipped.
 * Durable writes (asyncwrite.durable) of a transaction with an xid are
 * logged to the WAL at pre-commit, in the transaction, so they are exactly
 * as durable as its commit.  A transaction without one (it only queued
 * writes) logs them at commit, as a non-transactional message flushed as
 * its commit record would be: nothing else of it is durable, so it need not
 * get an xid, a commit record and a wakeup of the WAL writer for them.
 * With durable off no WAL is written, and a transaction that only queues
 * writes commits without a WAL flush.
 *
 * PREPARE TRANSACTION stores the kept writes as rows of the prepared
 * transaction (submit_prepared.c), for the worker to apply after COMMIT
 * PREPARED.
 *
 * A transaction whose kept writes would take more than a quarter of the
 * queue switches to writing them synchronously, in the transaction itself,
 * so that it never waits at commit for room it cannot get.  With
 * asyncwrite.on_full "sync", writes that find the queue full at commit are
 * written synchronously in the committing transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "launcher.h"
#include "submit.h"
#include "wal.h"

/* A write kept until its transaction commits. */
typedef struct AwPendingWrite
{
	AwWriteSpec spec;			/* payload and extra point into data */
	SubTransactionId subid;		/* innermost subtransaction that owns it */
	SubTransactionId written_in;	/* written synchronously in it; 0: kept */
	char	   *data;
} AwPendingWrite;

/* This transaction's writes, in call order (in TopTransactionContext). */
static List *aw_pending = NIL;
static Size aw_pending_bytes = 0;	/* queue bytes of the kept ones */
static int	aw_pending_kept = 0;

/* Subtransaction that switched the rest of the transaction to synchronous. */
static SubTransactionId aw_sync_subid = InvalidSubTransactionId;

/* The entries reserved at pre-commit, published at commit or abort. */
static AwEntryHeader **aw_reserved = NULL;
static int	aw_nreserved = 0;
static AwReservation aw_reservation;

/*
 * Their message, built at pre-commit and logged at commit, in a transaction
 * without an xid (data NULL: none).
 */
static StringInfoData aw_commit_message;

/*
 * The largest message logged at commit: a larger one is logged at
 * pre-commit, in the transaction, where a failure still aborts it cleanly.
 */
#define AW_COMMIT_MESSAGE_MAX	(1024 * 1024)

static bool aw_callbacks_registered = false;

/* Highest write id this session submitted. */
static uint64 aw_last_write_id = 0;

static void aw_xact_callback(XactEvent event, void *arg);
static void aw_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								SubTransactionId parentSubid, void *arg);

/* Forget this transaction's writes and reservations. */
static void
aw_xact_reset(void)
{
	aw_pending = NIL;
	aw_pending_bytes = 0;
	aw_pending_kept = 0;
	aw_sync_subid = InvalidSubTransactionId;
	aw_reserved = NULL;
	aw_nreserved = 0;
	aw_commit_message.data = NULL;
}

/*
 * Reserve the queue entries of every kept write as one block, so that the
 * transaction never waits for space while holding part of it.
 */
static void
aw_xact_reserve_all(void)
{
	AwWriteSpec *specs;
	AwEntryHeader **entries;
	ListCell   *lc;
	int			n = 0;

	if (aw_pending_kept == 0)
		return;
	specs = MemoryContextAlloc(TopTransactionContext,
							   sizeof(AwWriteSpec) * aw_pending_kept);
	entries = MemoryContextAlloc(TopTransactionContext,
								 sizeof(AwEntryHeader *) * aw_pending_kept);
	foreach(lc, aw_pending)
	{
		AwPendingWrite *w = (AwPendingWrite *) lfirst(lc);

		if (w->written_in == InvalidSubTransactionId)
			specs[n++] = w->spec;
	}
	Assert(n == aw_pending_kept);
	if (aw_submit_reserve_many(n, specs, entries, &aw_reservation))
	{
		uint64	   *ids = MemoryContextAlloc(TopTransactionContext,
											 sizeof(uint64) * n);

		aw_reserved = entries;
		aw_nreserved = n;

		/*
		 * Durable writes go to the WAL now, in this transaction, when it has
		 * an xid (or they are large): they commit, and are flushed, with it.
		 * Without one, at commit: PreCommit_Notify may yet give it an xid,
		 * and a serializable transaction may yet fail, but notifications and
		 * a failed transaction leave nothing durable to go with them.  (An
		 * xid given after this callback, by NOTIFY, ON COMMIT DROP or a
		 * pre-commit callback registered before ours, makes the commit record
		 * flushed before the message: a crash between the two keeps the
		 * transaction without its writes, and its COMMIT has not returned.)
		 * An error aborts the transaction, which publishes the entries as
		 * skipped.
		 */
		for (int i = 0; i < n; i++)
			ids[i] = aw_reservation.first_id + i;
		if (TransactionIdIsValid(GetTopTransactionIdIfAny()) ||
			aw_wal_size(entries, n) > AW_COMMIT_MESSAGE_MAX)
			(void) aw_wal_log(entries, ids, n, true);
		else
		{
			MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

			(void) aw_wal_build(entries, ids, n, &aw_commit_message);
			MemoryContextSwitchTo(old);
		}
		return;
	}

	/*
	 * No room, and on_full is "sync": write them in the committing
	 * transaction.  Deferred triggers have already fired by now, so the rows'
	 * constraints are made immediate first: a deferred constraint is checked
	 * as each row is written, never skipped.
	 */
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not make constraints immediate");
	SPI_finish();
	aw_xact_write_now(false);
	PopActiveSnapshot();
}

/*
 * Publish the reserved entries as ready (commit) or skipped (abort).  The
 * state is detached first, so nothing is published twice even if a later
 * step failed.  At commit, a message built at pre-commit is logged first,
 * and flushed as the commit record would have been: the worker applies no
 * write before its message, and the caller hears of no commit before the
 * flush.  Never raises an error.
 */
static void
aw_xact_publish_all(uint8 state)
{
	AwEntryHeader **entries = aw_reserved;
	int			n = aw_nreserved;
	AwReservation r = aw_reservation;
	StringInfoData message = aw_commit_message;
	uint64		urgent_id = 0;

	aw_xact_reset();
	if (n == 0)
		return;
	if (state == AW_ENTRY_READY && message.data != NULL && message.len > 0)
		aw_wal_flush(aw_wal_insert(&message, false), true);
	/* Read before publishing: a published entry may be consumed at once. */
	for (int i = 0; i < n; i++)
		if (state == AW_ENTRY_READY && (entries[i]->flags & AW_FLAG_URGENT))
			urgent_id = r.first_id + i;
	for (int i = 0; i < n; i++)
		aw_queue_publish(entries[i], state);
	aw_queue_reservation_done();
	if (state == AW_ENTRY_READY)
		aw_last_write_id = Max(aw_last_write_id, r.first_id + n - 1);
	/* Wake the worker as a write queued at the call would, not always. */
	aw_submit_wake(&r, urgent_id);
}

/* Register the transaction callbacks, once per session. */
static void
aw_xact_register(void)
{
	if (!aw_callbacks_registered)
	{
		RegisterXactCallback(aw_xact_callback, NULL);
		RegisterSubXactCallback(aw_subxact_callback, NULL);
		aw_callbacks_registered = true;
	}
}

/* Transaction callback: reserve at pre-commit, publish at commit or abort. */
static void
aw_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			aw_xact_reserve_all();
			break;
		case XACT_EVENT_COMMIT:
			aw_xact_publish_all(AW_ENTRY_READY);
			break;
		case XACT_EVENT_ABORT:
			aw_xact_publish_all(AW_ENTRY_SKIPPED);
			break;
		case XACT_EVENT_PRE_PREPARE:
			/* Kept writes become rows of the prepared transaction. */
			foreach(lc, aw_pending)
			{
				AwPendingWrite *w = (AwPendingWrite *) lfirst(lc);

				if (w->written_in == InvalidSubTransactionId)
					aw_prepared_store(&w->spec);
			}
			break;
		case XACT_EVENT_PREPARE:
			aw_xact_reset();
			break;
		default:
			break;
	}
}

/*
 * Subtransaction callback.  A rolled-back savepoint drops the writes it
 * made, and makes writes of outer levels that it wrote synchronously kept
 * again (their rows were rolled back with it); a released one hands both
 * to its parent.
 */
static void
aw_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, aw_pending)
		{
			AwPendingWrite *w = (AwPendingWrite *) lfirst(lc);
			Size		size = aw_entry_size(w->spec.payload_len, w->spec.extra_len);

			if (w->subid == mySubid)
			{
				if (w->written_in == InvalidSubTransactionId)
				{
					aw_pending_bytes -= size;
					aw_pending_kept--;
				}
				aw_pending = foreach_delete_current(aw_pending, lc);
			}
			else if (w->written_in == mySubid)
			{
				w->written_in = InvalidSubTransactionId;
				aw_pending_bytes += size;
				aw_pending_kept++;
			}
		}
		if (aw_sync_subid == mySubid)
			aw_sync_subid = InvalidSubTransactionId;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, aw_pending)
		{
			AwPendingWrite *w = (AwPendingWrite *) lfirst(lc);

			if (w->subid == mySubid)
				w->subid = parentSubid;
			if (w->written_in == mySubid)
				w->written_in = parentSubid;
		}
		if (aw_sync_subid == mySubid)
			aw_sync_subid = parentSubid;
	}
}

/*
 * Write this transaction's kept writes synchronously now, in order.  With
 * switch_mode, its later writes are written synchronously too (it holds
 * more than the queue should take at once).  Used before table DDL in the
 * same transaction, so the writes apply to the columns they were made for.
 */
void
aw_xact_write_now(bool switch_mode)
{
	ListCell   *lc;
	SubTransactionId subid = GetCurrentSubTransactionId();

	foreach(lc, aw_pending)
	{
		AwPendingWrite *w = (AwPendingWrite *) lfirst(lc);

		if (w->written_in != InvalidSubTransactionId)
			continue;
		aw_apply_now(aw_entry_make(&w->spec, GetCurrentTimestamp()));
		w->written_in = subid;
	}
	aw_pending_bytes = 0;
	aw_pending_kept = 0;
	if (switch_mode && aw_sync_subid == InvalidSubTransactionId)
		aw_sync_subid = subid;
}

/*
 * Keep a write until the transaction commits.  Returns false when it must
 * be written synchronously instead (the caller does that): in the apply
 * worker (a capture() trigger: then it commits with the batch, and the
 * worker never waits on its own queue), in a security-restricted
 * operation, or when the transaction switched to synchronous writes.
 */
bool
aw_xact_keep(const AwWriteSpec *spec)
{
	Size		size = aw_entry_size(spec->payload_len, spec->extra_len);
	AwPendingWrite *w;
	MemoryContext old;

	aw_check_available();
	if (aw_is_worker)
		return false;

	/*
	 * Inside a security-restricted operation (REFRESH MATERIALIZED VIEW, an
	 * index expression run by VACUUM or ANALYZE as the table's owner),
	 * nothing may be left to run at commit, outside it: written now, in it.
	 */
	if (InSecurityRestrictedOperation())
		return false;
	aw_xact_register();
	if (aw_sync_subid != InvalidSubTransactionId)
		return false;
	if (aw_pending_bytes + size > aw_queue_capacity() / 4)
	{
		aw_xact_write_now(true);
		return false;
	}

	old = MemoryContextSwitchTo(TopTransactionContext);
	w = palloc0(sizeof(AwPendingWrite));
	w->data = palloc(MAXALIGN(spec->payload_len) + spec->extra_len);
	memcpy(w->data, spec->payload, spec->payload_len);
	if (spec->extra_len > 0)
		memcpy(w->data + MAXALIGN(spec->payload_len), spec->extra,
			   spec->extra_len);
	w->spec = *spec;
	w->spec.payload = w->data;
	w->spec.extra = w->data + MAXALIGN(spec->payload_len);
	w->subid = GetCurrentSubTransactionId();
	w->written_in = InvalidSubTransactionId;
	aw_pending = lappend(aw_pending, w);
	aw_pending_bytes += size;
	aw_pending_kept++;
	MemoryContextSwitchTo(old);
	return true;
}

/* Number of writes this transaction will queue when it commits. */
int
aw_xact_pending_count(void)
{
	return aw_pending_kept;
}

/* Note a write id this session submitted. */
void
aw_xact_note_write_id(uint64 write_id)
{
	aw_last_write_id = Max(aw_last_write_id, write_id);
}

/* Forget the session's write ids (DISCARD ALL). */
void
aw_xact_forget_session(void)
{
	aw_last_write_id = 0;
}

/* The highest write id this session submitted, or 0. */
uint64
aw_xact_last_write_id(void)
{
	return aw_last_write_id;
}
