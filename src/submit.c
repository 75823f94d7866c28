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
 * Submit a converted write of the caller's role.  Returns the write id of
 * a write queued at once, else NULL.  Closes rel (keeping its lock).  In
 * the apply worker (a trigger on a target queues a write) every write,
 * transactional or not, is written synchronously in the run's
 * (sub)transaction: a run that fails and is tried again in halves takes
 * its writes back, so none is made twice, and the worker never waits for
 * room in its own queue.
 */
Datum
aw_submit_write(FunctionCallInfo fcinfo, Relation rel, AwTarget *t, Datum row,
				uint8 kind, const AwColumnSets *cs, uint32 flags,
				bool transactional)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(row);
	AwWriteSpec w;
	uint64		write_id;

	w.relid = RelationGetRelid(rel);
	w.roleid = GetUserId();
	w.fingerprint = aw_target_fingerprint(t);
	w.kind = kind;
	w.flags = flags;
	if (kind == AW_KIND_INSERT && !(flags & AW_FLAG_GIVEN) &&
		aw_target_row_deferred(t, row))
		w.flags |= AW_FLAG_DEFERRED;
	w.payload = td;
	w.payload_len = HeapTupleHeaderGetDatumLength(td);
	w.extra = cs;
	w.extra_len = cs ? AW_COLSETS_SIZE(cs->nkeys, cs->nset) : 0;

	/*
	 * A durable write is logged to the WAL when it is queued; its database's
	 * replication slot must keep the WAL from before that.
	 */
	if (aw_enabled && !aw_is_worker && aw_durable_ready())
		w.flags |= AW_FLAG_DURABLE;

	if (aw_enabled && transactional)
	{
		Size		size = aw_entry_size(w.payload_len, w.extra_len);

		if (size <= aw_queue_capacity() / 4)
		{
			if (aw_xact_keep(&w))
			{
				table_close(rel, NoLock);
				PG_RETURN_NULL();
			}
		}
		else if (aw_on_full != AW_ON_FULL_SYNC)
			aw_submit_too_large(size);
	}
	else if (aw_enabled && !aw_is_worker && aw_submit_now(&w, &write_id))
	{
		aw_xact_note_write_id(write_id);
		table_close(rel, NoLock);
		PG_RETURN_INT64((int64) write_id);
	}

	aw_apply_now(aw_entry_make(&w, GetCurrentTimestamp()));
	table_close(rel, NoLock);
	PG_RETURN_NULL();
}
