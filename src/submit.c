/*-------------------------------------------------------------------------
 *
 * submit.c
 *		Route a converted write: kept until its transaction commits
 *		(transactional, the default), queued at once, or written now in the
 *		caller's transaction (asyncwrite.enabled off, a full queue with
 *		on_full "sync", a row too large for the queue with on_full "sync",
 *		a transaction holding more than the queue should take, or the apply
 *		worker's own writes from a trigger).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "miscadmin.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "launcher.h"
#include "submit.h"
#include "wal.h"

/* How long a backend trusts what it saw of the mark table and the slot. */
#define AW_DURABLE_RECHECK_MS	1000

/*
 * Whether this transaction's writes are durable (asyncwrite.durable): the
 * database's extension has the applied mark (1.1; an earlier version's
 * writes stay in memory, with a WARNING once per session), and its
 * replication slot keeps the WAL from before they are logged.  Fails
 * (55000) where no slot can keep it.  Looked at again after
 * AW_DURABLE_RECHECK_MS, in another database, or once asyncwrite dropped a
 * slot: reading the slot in every transaction (its spinlock) costs many
 * clients dearly.
 */
static bool
aw_durable_ready(void)
{
	static TimestampTz checked_at = 0;
	static Oid	checked_db = InvalidOid;
	static uint64 checked_epoch = 0;
	static bool ready = false;
	static bool warned = false;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	if (!aw_durable)
		return false;
	if (checked_db == MyDatabaseId && checked_epoch == aw_queue_slot_epoch() &&
		!TimestampDifferenceExceeds(checked_at, now, AW_DURABLE_RECHECK_MS))
		return ready;
	checked_epoch = aw_queue_slot_epoch();
	ready = aw_mark_exists();
	if (ready)
		aw_wal_ensure_slot();
	else if (!warned)
	{
		ereport(WARNING,
				(errmsg("asyncwrite writes in this database are not durable"),
				 errdetail("The asyncwrite extension of this database is older than the library; durable writes need its version 1.1."),
				 errhint("Run ALTER EXTENSION asyncwrite UPDATE.")));
		warned = true;
	}
	checked_at = now;
	checked_db = MyDatabaseId;
	return ready;
}

/*
 * Describe a converted write of the caller's role (pointing into row and
 * cs), durable when asyncwrite.durable says so and a slot keeps its WAL.
 */
void
aw_write_spec_make(AwWriteSpec *w, Relation rel, AwTarget *t, Datum row,
				   uint8 kind, const AwColumnSets *cs, uint32 flags)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(row);

	w->relid = RelationGetRelid(rel);
	w->roleid = GetUserId();
	w->fingerprint = aw_target_fingerprint(t);
	w->kind = kind;
	w->flags = flags;
	if (kind == AW_KIND_INSERT && !(flags & AW_FLAG_GIVEN) &&
		aw_target_row_deferred(t, row))
		w->flags |= AW_FLAG_DEFERRED;
	w->payload = td;
	w->payload_len = HeapTupleHeaderGetDatumLength(td);
	w->extra = cs;
	w->extra_len = cs ? AW_COLSETS_SIZE(cs->nkeys, cs->nset) : 0;

	/*
	 * A durable write is logged to the WAL when it is queued; its database's
	 * replication slot must keep the WAL from before that.
	 */
	if (aw_enabled && !aw_is_worker && aw_durable_ready())
		w->flags |= AW_FLAG_DURABLE;
}

/*
 * Submit n converted writes to one target, all or none: kept until the
 * transaction commits (transactional; a failing call aborts what kept
 * them), queued at once as one block, or written now.  Returns the last
 * write id of writes queued at once, else NULL.  Closes rel (keeping its
 * lock).  In the apply worker (a trigger on a target queues a write) every
 * write, transactional or not, is written synchronously in the run's
 * (sub)transaction: a run that fails and is tried again in halves takes
 * its writes back, so none is made twice, and the worker never waits for
 * room in its own queue.
 */
Datum
aw_submit_writes(FunctionCallInfo fcinfo, Relation rel, int n, AwWriteSpec *w,
				 bool transactional)
{
	uint64		write_id;
	bool		queued = false;
	TimestampTz now;

	if (n == 0)
	{
		table_close(rel, NoLock);
		PG_RETURN_NULL();
	}
	if (aw_enabled && transactional)
	{
		/*
		 * Kept until commit; written now when the transaction does not keep
		 * them (see aw_xact_keep) or a row is too large for the queue and
		 * on_full is "sync".
		 */
		for (int i = 0; i < n; i++)
		{
			Size		size = aw_entry_size(w[i].payload_len, w[i].extra_len);

			if (size > aw_queue_capacity() / 4)
			{
				if (aw_on_full != AW_ON_FULL_SYNC)
					aw_submit_too_large(size, 1);
			}
			else if (aw_xact_keep(&w[i]))
				continue;
			aw_apply_now(aw_entry_make(&w[i], GetCurrentTimestamp()));
		}
		table_close(rel, NoLock);
		PG_RETURN_NULL();
	}
	if (aw_enabled && !aw_is_worker)
		queued = aw_submit_now(n, w, &write_id);
	if (queued)
	{
		aw_xact_note_write_id(write_id);
		table_close(rel, NoLock);
		PG_RETURN_INT64((int64) write_id);
	}

	now = GetCurrentTimestamp();
	for (int i = 0; i < n; i++)
		aw_apply_now(aw_entry_make(&w[i], now));
	table_close(rel, NoLock);
	PG_RETURN_NULL();
}

/* aw_submit_writes() of one write. */
Datum
aw_submit_write(FunctionCallInfo fcinfo, Relation rel, AwTarget *t, Datum row,
				uint8 kind, const AwColumnSets *cs, uint32 flags,
				bool transactional)
{
	AwWriteSpec w;

	aw_write_spec_make(&w, rel, t, row, kind, cs, flags);
	return aw_submit_writes(fcinfo, rel, 1, &w, transactional);
}
