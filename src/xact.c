/*-------------------------------------------------------------------------
 *
 * xact.c
 *		Transactional submission: a write made with asyncwrite.transactional
 *		on is kept in backend memory until its transaction commits, and
 *		dropped if the transaction or the savepoint around it rolls back.
 *
 * At XACT_EVENT_PRE_COMMIT every kept write gets its queue entry (an ERROR
 * there still aborts the transaction cleanly); at XACT_EVENT_COMMIT, when
 * the commit is durable and visible, the entries are published, so the
 * worker sees exactly the rows the transaction wrote (foreign keys to them
 * hold); at abort, entries already reserved are published as skipped.  No
 * transaction id is needed, so a transaction that only queues writes
 * commits without a WAL flush.
 *
 * PREPARE TRANSACTION stores the kept writes as rows of the prepared
 * transaction (prepared.c), to be queued after COMMIT PREPARED.
 *
 * A transaction whose kept writes would take more than a quarter of the
 * queue switches to writing them synchronously, in the transaction itself,
 * so that it never waits at commit for room it cannot get.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "asyncwrite.h"

/* A write kept until its transaction commits. */
typedef struct AwPendingWrite
{
	Oid			relid;
	Oid			roleid;
	uint32		fingerprint;
	uint16		natts;
	uint8		kind;
	uint32		flags;
	SubTransactionId subid;		/* innermost subtransaction that owns it */
	Size		payload_len;
	Size		extra_len;
	char	   *data;			/* payload, then extra at MAXALIGN */
	AwEntryHeader *entry;		/* its queue entry, once reserved */
	AwPublish	publish;
} AwPendingWrite;

/* This transaction's kept writes, in order (in TopTransactionContext). */
static List *aw_pending = NIL;
static Size aw_pending_bytes = 0;
static bool aw_xact_synchronous = false;
static bool aw_callbacks_registered = false;

/* Highest write id this session submitted. */
static uint64 aw_last_write_id = 0;

PG_FUNCTION_INFO_V1(aw_last_write_id_fn);

/* Forget this transaction's kept writes. */
static void
aw_xact_reset(void)
{
	aw_pending = NIL;
	aw_pending_bytes = 0;
	aw_xact_synchronous = false;
}

/* A kept write laid out as a queue entry, for a synchronous write. */
static AwEntryHeader *
aw_pending_as_entry(AwPendingWrite *w)
{
	Size		len = aw_entry_size(w->payload_len, w->extra_len);
	AwEntryHeader *hdr = palloc0(len);

	hdr->length = (uint32) len;
	hdr->state = AW_ENTRY_READY;
	hdr->kind = w->kind;
	hdr->natts = w->natts;
	hdr->relid = w->relid;
	hdr->roleid = w->roleid;
	hdr->fingerprint = w->fingerprint;
	hdr->flags = w->flags;
	memcpy(AW_ENTRY_PAYLOAD(hdr), w->data,
		   MAXALIGN(w->payload_len) + w->extra_len);
	return hdr;
}

/* Reserve and fill the queue entries of every kept write, in order. */
static void
aw_xact_reserve_all(void)
{
	ListCell   *lc;

	foreach(lc, aw_pending)
	{
		AwPendingWrite *w = (AwPendingWrite *) lfirst(lc);
		uint64		write_id;
		int			save_on_full = aw_on_full;

		/* Too late to write synchronously: a full queue is waited for. */
		if (aw_on_full == AW_ON_FULL_SYNC)
			aw_on_full = AW_ON_FULL_WAIT;
		PG_TRY();
		{
			w->entry = aw_queue_prepare(w->relid, w->roleid, w->fingerprint,
										w->natts, w->kind, w->flags, w->data,
										w->payload_len,
										w->data + MAXALIGN(w->payload_len),
										w->extra_len, &write_id, &w->publish);
		}
		PG_FINALLY();
		{
			aw_on_full = save_on_full;
		}
		PG_END_TRY();
		aw_last_write_id = Max(aw_last_write_id, write_id);
	}
}

/* Publish every reserved entry as ready (commit) or skipped (abort). */
static void
aw_xact_publish_all(uint8 state)
{
	ListCell   *lc;
	AwPublish  *last = NULL;

	foreach(lc, aw_pending)
	{
		AwPendingWrite *w = (AwPendingWrite *) lfirst(lc);

		if (w->entry == NULL)
			continue;
		aw_queue_publish(w->entry, state);
		last = &w->publish;
	}
	if (last != NULL)
	{
		last->wake = true;
		aw_queue_wake(last);
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
			if (aw_pending != NIL)
				aw_xact_reserve_all();
			break;
		case XACT_EVENT_COMMIT:
			aw_xact_publish_all(AW_ENTRY_READY);
			aw_xact_reset();
			break;
		case XACT_EVENT_ABORT:
			aw_xact_publish_all(AW_ENTRY_SKIPPED);
			aw_xact_reset();
			break;
		case XACT_EVENT_PRE_PREPARE:
			/* Kept writes become rows of the prepared transaction. */
			foreach(lc, aw_pending)
			{
				AwPendingWrite *w = (AwPendingWrite *) lfirst(lc);

				aw_prepared_store(w->relid, w->roleid, w->fingerprint, w->natts,
								  w->kind, w->flags, w->data, w->payload_len,
								  w->data + MAXALIGN(w->payload_len), w->extra_len);
			}
			break;
		case XACT_EVENT_PREPARE:
			aw_xact_reset();
			break;
		default:
			break;
	}
}

/* Subtransaction callback: a rolled-back savepoint drops its writes. */
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

			if (w->subid == mySubid)
			{
				aw_pending_bytes -= aw_entry_size(w->payload_len, w->extra_len);
				aw_pending = foreach_delete_current(aw_pending, lc);
			}
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, aw_pending)
		{
			AwPendingWrite *w = (AwPendingWrite *) lfirst(lc);

			if (w->subid == mySubid)
				w->subid = parentSubid;
		}
	}
}

/*
 * Write every kept write synchronously now, in order, and the rest of the
 * transaction's writes too: the transaction holds more than the queue
 * should take at once.
 */
static void
aw_xact_go_synchronous(void)
{
	ListCell   *lc;

	foreach(lc, aw_pending)
		aw_apply_sync_entry(aw_pending_as_entry((AwPendingWrite *) lfirst(lc)));
	aw_xact_reset();
	aw_xact_synchronous = true;
}

/*
 * Keep a write until the transaction commits.  Returns false when it must
 * be written synchronously instead (the caller does that).
 */
bool
aw_xact_keep(Oid relid, Oid roleid, uint32 fingerprint, uint16 natts,
			 uint8 kind, uint32 flags, const void *payload, Size payload_len,
			 const void *extra, Size extra_len)
{
	Size		size = aw_entry_size(payload_len, extra_len);
	AwPendingWrite *w;
	MemoryContext old;

	aw_check_available();
	if (!aw_callbacks_registered)
	{
		RegisterXactCallback(aw_xact_callback, NULL);
		RegisterSubXactCallback(aw_subxact_callback, NULL);
		aw_callbacks_registered = true;
	}
	if (aw_xact_synchronous)
		return false;
	if (aw_pending_bytes + size > aw_control->capacity / 4)
	{
		aw_xact_go_synchronous();
		return false;
	}

	old = MemoryContextSwitchTo(TopTransactionContext);
	w = palloc0(sizeof(AwPendingWrite));
	w->relid = relid;
	w->roleid = roleid;
	w->fingerprint = fingerprint;
	w->natts = natts;
	w->kind = kind;
	w->flags = flags;
	w->subid = GetCurrentSubTransactionId();
	w->payload_len = payload_len;
	w->extra_len = extra_len;
	w->data = palloc(MAXALIGN(payload_len) + extra_len);
	memcpy(w->data, payload, payload_len);
	if (extra_len > 0)
		memcpy(w->data + MAXALIGN(payload_len), extra, extra_len);
	aw_pending = lappend(aw_pending, w);
	aw_pending_bytes += size;
	MemoryContextSwitchTo(old);
	return true;
}

/* Keep a write until commit, or write it synchronously if it cannot be. */
void
aw_xact_submit(Oid relid, Oid roleid, uint32 fingerprint, uint16 natts,
			   uint8 kind, uint32 flags, const void *payload, Size payload_len,
			   const void *extra, Size extra_len)
{
	AwPendingWrite w;

	if (aw_xact_keep(relid, roleid, fingerprint, natts, kind, flags, payload,
					 payload_len, extra, extra_len))
		return;
	memset(&w, 0, sizeof(w));
	w.relid = relid;
	w.roleid = roleid;
	w.fingerprint = fingerprint;
	w.natts = natts;
	w.kind = kind;
	w.flags = flags;
	w.payload_len = payload_len;
	w.extra_len = extra_len;
	w.data = palloc(MAXALIGN(payload_len) + extra_len);
	memcpy(w.data, payload, payload_len);
	if (extra_len > 0)
		memcpy(w.data + MAXALIGN(payload_len), extra, extra_len);
	aw_apply_sync_entry(aw_pending_as_entry(&w));
}

/* Number of writes this transaction will queue when it commits. */
int
aw_xact_pending_count(void)
{
	return list_length(aw_pending);
}

/* Note a write id this session submitted. */
void
aw_xact_note_write_id(uint64 write_id)
{
	aw_last_write_id = Max(aw_last_write_id, write_id);
}

/* asyncwrite.last_write_id(): the highest write id this session submitted. */
Datum
aw_last_write_id_fn(PG_FUNCTION_ARGS)
{
	if (aw_last_write_id == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64((int64) aw_last_write_id);
}
