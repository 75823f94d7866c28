/*-------------------------------------------------------------------------
 *
 * wal_log.c
 *		Log durable writes to the WAL, and keep the WAL they need.
 *
 * A transaction logs its durable queue entries, with their write ids, as
 * one transactional logical message at pre-commit, after their ids are
 * reserved: the message commits (and is flushed, under the caller's
 * synchronous_commit) with the transaction, and is lost with it.  A write
 * queued outside a transaction is logged as a non-transactional message at
 * the call, flushed when the calling transaction ends (before the caller
 * hears of its success) unless synchronous_commit is off.  Logical messages are
 * built into PostgreSQL (replication/message.c) and replay as nothing, so
 * a server without asyncwrite still starts from this WAL.
 *
 * Redo starts at the last checkpoint, so the WAL of a write applied later
 * would be recycled: a persistent physical replication slot per database,
 * "asyncwrite_<database oid>", created by the first durable write there,
 * keeps it.  The apply worker moves the slot forward as writes are applied
 * (only past positions whose applied mark is flushed: aw_wal_advance_slot),
 * and the launcher for databases with nothing queued; DROP EXTENSION and
 * DROP DATABASE drop it.  asyncwrite's processes create, move and drop
 * slots under one lock (the second of its named tranche), so they never
 * find each other's slot acquired.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "replication/slot.h"
#include "replication/syncrep.h"
#include "storage/fd.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "wal.h"

/* Format of asyncwrite's messages: this header, then (id, entry) pairs. */
#define AW_WAL_VERSION	1

/*
 * The most bytes of entries in one message: a transaction's writes take as
 * many as they need.  WAL records over 1 GB cannot be read back (PostgreSQL
 * 16 refuses to write them), and the recovery reads one whole.
 */
#define AW_WAL_MAX_MESSAGE	(64 * 1024 * 1024)

/*
 * How late, at most, the launcher has the WAL writer flush the messages
 * logged with synchronous_commit off outside a commit record, on top of the
 * WAL writer's own delay (aw_wal_flush).
 */
#define AW_FLUSH_NUDGE_MS	10

static void aw_wal_ensure_slot_for(Oid dboid);

/* The lock under which asyncwrite creates, moves and drops its slots. */
static LWLock *
aw_wal_lock(void)
{
	static LWLock *lock = NULL;

	if (lock == NULL)
		lock = &(GetNamedLWLockTranche("asyncwrite"))[1].lock;
	return lock;
}

/* The name of database dboid's slot. */
static void
aw_wal_slot_name(Oid dboid, char *name)
{
	snprintf(name, NAMEDATALEN, "asyncwrite_%u", dboid);
}

/*
 * Refuse a durable write where the server cannot keep its WAL: no
 * replication slots at wal_level minimal or with max_replication_slots 0.
 */
void
aw_wal_check_durable(void)
{
	if (wal_level < WAL_LEVEL_REPLICA)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("durable asyncwrite writes need wal_level \"replica\" or \"logical\""),
				 errdetail("A durable write is logged to the WAL, kept there by a replication slot until it is applied; wal_level is \"minimal\"."),
				 errhint("Set wal_level to \"replica\" and restart the server, or set asyncwrite.durable to off for writes that a crash may lose.")));
	if (max_replication_slots == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("durable asyncwrite writes need a replication slot"),
				 errdetail("A durable write is kept in the WAL by a replication slot of its database until it is applied; max_replication_slots is 0."),
				 errhint("Set max_replication_slots to at least the number of databases using asyncwrite and restart the server, or set asyncwrite.durable to off for writes that a crash may lose.")));
}

/* What database dboid's slot holds. */
void
aw_wal_slot_info(Oid dboid, AwSlotInfo *info)
{
	char		name[NAMEDATALEN];
	ReplicationSlot *s;

	aw_wal_slot_name(dboid, name);
	strlcpy(info->name, name, NAMEDATALEN);
	info->exists = false;
	info->restart_lsn = InvalidXLogRecPtr;
	if (max_replication_slots == 0)
		return;
	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	s = SearchNamedReplicationSlot(name, false);
	if (s != NULL)
	{
		info->exists = true;
		SpinLockAcquire(&s->mutex);
		if (!aw_slot_invalidated(s))
			info->restart_lsn = s->data.restart_lsn;
		SpinLockRelease(&s->mutex);
	}
	LWLockRelease(ReplicationSlotControlLock);
}

/*
 * Create a persistent physical slot that keeps the WAL from the last
 * checkpoint's redo position on, and save it.  An error leaves it released:
 * a slot left acquired would block every later move of it.
 */
static void
aw_wal_create_slot(const char *name)
{
	aw_slot_create(name);
	PG_TRY();
	{
		ReplicationSlotReserveWal();
		ReplicationSlotMarkDirty();
		ReplicationSlotSave();
	}
	PG_CATCH();
	{
		ReplicationSlotRelease();
		PG_RE_THROW();
	}
	PG_END_TRY();
	ReplicationSlotRelease();
}

/*
 * Make sure this database's slot keeps the WAL from now on, before a
 * durable write is logged: create it (its WAL starts at the last
 * checkpoint's redo position, before anything logged after), or create it
 * again if it was invalidated, saying that writes logged before may have
 * lost their WAL.
 */
void
aw_wal_ensure_slot(void)
{
	aw_wal_ensure_slot_for(MyDatabaseId);
}

/* aw_wal_ensure_slot for database dboid (the launcher has none of its own). */
static void
aw_wal_ensure_slot_for(Oid dboid)
{
	char		name[NAMEDATALEN];
	AwSlotInfo	info;

	aw_wal_slot_info(dboid, &info);
	if (!XLogRecPtrIsInvalid(info.restart_lsn))
		return;
	aw_wal_check_durable();
	aw_wal_slot_name(dboid, name);

	LWLockAcquire(aw_wal_lock(), LW_EXCLUSIVE);
	aw_wal_slot_info(dboid, &info);
	if (XLogRecPtrIsInvalid(info.restart_lsn))
	{
		AwQueue    *q = aw_queue_lookup(dboid);
		uint64		applied = q ? aw_queue_applied_write_id(q) : 0;
		uint64		last = q ? aw_queue_last_write_id(q) : 0;

		if (info.exists)
		{
			if (last > applied)
				ereport(WARNING,
						(errmsg("replication slot \"%s\" of asyncwrite was invalidated", name),
						 errdetail("The WAL of the queued durable writes with write ids " UINT64_FORMAT " to " UINT64_FORMAT " may be gone: they are applied, unless the server crashes first.",
								   applied + 1, last),
						 errhint("Keep max_slot_wal_keep_size large enough for the writes the queue holds, and keep the queue from staying paused.")));
			else
				ereport(WARNING,
						(errmsg("replication slot \"%s\" of asyncwrite was invalidated", name),
						 errdetail("No durable write was waiting for its WAL."),
						 errhint("Keep max_slot_wal_keep_size large enough for the writes the queue holds, and keep the queue from staying paused.")));
			aw_queue_bump_slot_epoch();
			ReplicationSlotDrop(name, true);
		}
		aw_wal_create_slot(name);

		/*
		 * The queued writes whose WAL went with the invalidated slot: a
		 * recovery after a crash reads this record (the new slot keeps it)
		 * and reports those it cannot bring back.
		 */
		if (info.exists && last > applied)
		{
			uint64		range[2] = {applied + 1, last};

			XLogFlush(aw_log_message(AW_WAL_LOST_PREFIX, (char *) range,
									 sizeof(range), false));
		}
		ereport(LOG,
				(errmsg("asyncwrite created replication slot \"%s\" to keep the WAL of durable writes", name)));
	}
	LWLockRelease(aw_wal_lock());
}

/*
 * Make sure database dboid's slot keeps the WAL (aw_wal_ensure_slot_for) or,
 * with drop, drop it, catching an error: returns NULL, or the error, with
 * the locks and the slot it held released.
 */
static ErrorData *
aw_wal_try_slot(Oid dboid, bool drop)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData  *volatile edata = NULL;

	PG_TRY();
	{
		if (drop)
			(void) aw_wal_drop_slot(dboid);
		else
			aw_wal_ensure_slot_for(dboid);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		LWLockReleaseAll();
		if (MyReplicationSlot != NULL)
			ReplicationSlotRelease();
	}
	PG_END_TRY();
	return edata;
}

/*
 * aw_wal_ensure_slot_for, a failure (no free slot) turned into a WARNING;
 * returns whether the slot keeps the WAL.
 */
static bool
aw_wal_try_ensure_slot(Oid dboid)
{
	ErrorData  *edata = aw_wal_try_slot(dboid, false);

	if (edata == NULL)
		return true;
	ereport(WARNING,
			(errmsg("asyncwrite could not make a replication slot keep the WAL of database %u: %s",
					dboid, edata->message),
			 errdetail("Its durable writes are read back all the same; a crash before they are applied would lose them.")));
	return false;
}

/*
 * Set slot name's restart position to lsn, under aw_wal_lock (so no other
 * process of asyncwrite has it acquired); with save, on disk at once, else
 * at the next checkpoint.
 */
static void
aw_wal_set_restart(const char *name, XLogRecPtr lsn, bool save)
{
	aw_slot_acquire(name);
	SpinLockAcquire(&MyReplicationSlot->mutex);
	MyReplicationSlot->data.restart_lsn = lsn;
	SpinLockRelease(&MyReplicationSlot->mutex);
	ReplicationSlotMarkDirty();
	if (save)
		ReplicationSlotSave();
	ReplicationSlotRelease();
}

/*
 * Make database dboid's slot keep the WAL from lsn on (a recovery without a
 * slot reads from there): created if need be, and moved back to lsn, or to
 * the oldest segment not yet removed if lsn is older.  A failure (no free
 * slot) is a WARNING: the recovery goes on without a slot.
 */
void
aw_wal_keep_from(Oid dboid, XLogRecPtr lsn)
{
	char		name[NAMEDATALEN];
	AwSlotInfo	info;
	XLogSegNo	segno;
	XLogSegNo	removed = XLogGetLastRemovedSegno();

	if (wal_level < WAL_LEVEL_REPLICA || max_replication_slots == 0 ||
		XLogRecPtrIsInvalid(lsn))
		return;
	if (!aw_wal_try_ensure_slot(dboid))
		return;
	XLByteToSeg(lsn, segno, wal_segment_size);
	if (segno <= removed)
		XLogSegNoOffsetToRecPtr(removed + 1, 0, wal_segment_size, lsn);
	aw_wal_slot_name(dboid, name);
	LWLockAcquire(aw_wal_lock(), LW_EXCLUSIVE);
	aw_wal_slot_info(dboid, &info);
	if (!XLogRecPtrIsInvalid(info.restart_lsn) && lsn < info.restart_lsn)
		aw_wal_set_restart(name, lsn, true);
	LWLockRelease(aw_wal_lock());
	ReplicationSlotsComputeRequiredLSN();
}

/* The bytes an entry takes in a message: none if it is not durable. */
static Size
aw_wal_entry_size(const AwEntryHeader *entry)
{
	return (entry->flags & AW_FLAG_DURABLE) ? sizeof(uint64) + entry->length : 0;
}

/* The bytes of the messages of n entries, headers left out. */
Size
aw_wal_size(AwEntryHeader **entries, int n)
{
	Size		size = 0;

	for (int i = 0; i < n; i++)
		size += aw_wal_entry_size(entries[i]);
	return size;
}

/*
 * Build the message of the durable ones of n reserved entries, of write ids
 * ids[], in buf (initialized here, in the current memory context).  Returns
 * false, leaving buf empty, when none is durable.
 */
bool
aw_wal_build(AwEntryHeader **entries, const uint64 *ids, int n, StringInfo buf)
{
	uint32		header[2] = {AW_WAL_VERSION, 0};

	initStringInfo(buf);
	appendBinaryStringInfo(buf, (char *) header, sizeof(header));
	for (int i = 0; i < n; i++)
	{
		AwEntryHeader copy;

		if (!(entries[i]->flags & AW_FLAG_DURABLE))
			continue;
		copy = *entries[i];
		copy.state = AW_ENTRY_READY;
		appendBinaryStringInfo(buf, (char *) &ids[i], sizeof(uint64));
		appendBinaryStringInfo(buf, (char *) &copy, sizeof(copy));
		appendBinaryStringInfo(buf, AW_ENTRY_PAYLOAD(entries[i]),
							   entries[i]->length - sizeof(AwEntryHeader));
		header[1]++;
	}
	if (header[1] == 0)
	{
		resetStringInfo(buf);
		return false;
	}
	memcpy(buf->data, header, sizeof(header));
	return true;
}

/*
 * Log a message that aw_wal_build made; returns its end.  A transactional
 * one commits and is flushed with the transaction.  A non-transactional one
 * is the caller's to flush (aw_wal_flush): it does not count as this
 * transaction's WAL, which would make a transaction without an xid wake the
 * WAL writer at its commit.
 */
XLogRecPtr
aw_wal_insert(StringInfo msg, bool transactional)
{
	XLogRecPtr	before = XactLastRecEnd;
	XLogRecPtr	end = aw_log_message(AW_WAL_PREFIX, msg->data, msg->len,
									 transactional);

	if (!transactional)
		XactLastRecEnd = before;
	return end;
}

/*
 * Log the durable ones of n reserved entries, of write ids ids[]: in
 * messages of at most AW_WAL_MAX_MESSAGE (one entry may be larger), all
 * committed with the transaction; non-transactional, in one, or an error
 * (54000) when they do not fit in one, before anything is logged: a crash
 * between two could keep some of one call's writes.  Returns the end of the
 * last message, or InvalidXLogRecPtr when no entry is durable.
 */
XLogRecPtr
aw_wal_log(AwEntryHeader **entries, const uint64 *ids, int n,
		   bool transactional)
{
	XLogRecPtr	end = InvalidXLogRecPtr;
	Size		size = transactional ? 0 : aw_wal_size(entries, n);
	int			first = 0;

	if (size > AW_WAL_MAX_MESSAGE)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("durable writes of %zu bytes are too large for one non-transactional call",
						size),
				 errdetail("The writes of a call made with transactional => false are logged to the WAL as one message of at most %d bytes.",
						   AW_WAL_MAX_MESSAGE),
				 errhint("Queue them in a transaction (transactional => true, the default), in smaller calls, or with asyncwrite.durable off.")));
	while (first < n)
	{
		StringInfoData buf;
		Size		len = aw_wal_entry_size(entries[first]);
		int			last = first + 1;

		while (last < n && len + aw_wal_entry_size(entries[last]) <= AW_WAL_MAX_MESSAGE)
			len += aw_wal_entry_size(entries[last++]);
		if (aw_wal_build(entries + first, ids + first, last - first, &buf))
			end = aw_wal_insert(&buf, transactional);
		pfree(buf.data);
		first = last;
	}
	return end;
}

/*
 * Flush a non-transactional message up to end as a commit record would be
 * under synchronous_commit: now, and (with wait_standbys) by the synchronous
 * standbys, or, when it is off, by the WAL writer soon.  For the latter, the
 * launcher nudges the WAL writer for every such message at once, at most
 * every AW_FLUSH_NUDGE_MS: a commit record nudges it each time, a wakeup of
 * its own per transaction, which cost more than the message.  Raises no
 * error (called at XACT_EVENT_COMMIT).
 */
void
aw_wal_flush(XLogRecPtr end, bool wait_standbys)
{
	if (XLogRecPtrIsInvalid(end))
		return;
	if (synchronous_commit == SYNCHRONOUS_COMMIT_OFF)
	{
		bool		no_launcher;
		Latch	   *launcher = aw_queue_note_unflushed(end, &no_launcher);

		if (launcher != NULL)
			SetLatch(launcher);
		else if (no_launcher)
			XLogSetAsyncXactLSN(end);
		return;
	}
	XLogFlush(end);
	if (wait_standbys)
	{
		HOLD_INTERRUPTS();
		SyncRepWaitForLSN(end, true);
		RESUME_INTERRUPTS();
	}
}

/*
 * In the launcher: note in the WAL the highest write id of databases (a
 * non-transactional message, which the WAL writer flushes soon, and so
 * streams to the standbys).  Returns its position.
 */
XLogRecPtr
aw_wal_note_ids(const AwIdsNote *notes, int n)
{
	XLogRecPtr	end = aw_log_message(AW_WAL_IDS_PREFIX, (const char *) notes,
									 sizeof(AwIdsNote) * n, false);

	XLogSetAsyncXactLSN(end);
	return end;
}

/*
 * In the launcher: have the WAL writer flush the messages owed a flush
 * (aw_wal_flush) if the first of them is AW_FLUSH_NUDGE_MS old; otherwise
 * lower *timeout_ms to when it will be.  *owed_since is the launcher's.
 */
void
aw_wal_nudge_writer(TimestampTz *owed_since, long *timeout_ms)
{
	TimestampTz now;
	long		left;

	if (!aw_queue_unflushed_owed())
		return;
	now = GetCurrentTimestamp();
	if (*owed_since == 0)
		*owed_since = now;
	left = AW_FLUSH_NUDGE_MS - (long) ((now - *owed_since) / 1000);
	if (left > 0)
	{
		*timeout_ms = Min(*timeout_ms, left);
		return;
	}
	*owed_since = 0;
	XLogSetAsyncXactLSN(aw_queue_take_unflushed());
}

/*
 * The end of the WAL generated before lsn, a position where the next record
 * starts.  GetXLogInsertRecPtr() gives such a position past the header of a
 * page not yet written when the insert position is at a page boundary; no
 * WAL ends there, and XLogFlush() fails on a request past the end of the
 * generated WAL, so the boundary itself is returned.
 */
static XLogRecPtr
aw_wal_end_before(XLogRecPtr lsn)
{
	uint64		seg_offset = XLogSegmentOffset(lsn, wal_segment_size);

	if (seg_offset == SizeOfXLogLongPHD)
		return lsn - SizeOfXLogLongPHD;
	if (seg_offset > XLOG_BLCKSZ && lsn % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		return lsn - SizeOfXLogShortPHD;
	return lsn;
}

/*
 * Move database dboid's slot forward to lsn: every durable write logged
 * before lsn is applied, or recorded as failed, or rolled back.  The
 * applied mark that says so must be durable before the WAL goes, so
 * everything up to lsn and this process's last commit is flushed first.
 */
void
aw_wal_advance_slot(Oid dboid, XLogRecPtr lsn)
{
	char		name[NAMEDATALEN];
	AwSlotInfo	info;

	aw_wal_slot_info(dboid, &info);
	if (XLogRecPtrIsInvalid(info.restart_lsn) || lsn <= info.restart_lsn)
		return;
	XLogFlush(Max(aw_wal_end_before(lsn), XactLastCommitEnd));
	aw_wal_slot_name(dboid, name);

	LWLockAcquire(aw_wal_lock(), LW_EXCLUSIVE);
	aw_wal_slot_info(dboid, &info);
	if (!XLogRecPtrIsInvalid(info.restart_lsn) && lsn > info.restart_lsn)
		aw_wal_set_restart(name, lsn, false);
	LWLockRelease(aw_wal_lock());
	ReplicationSlotsComputeRequiredLSN();
}

/*
 * Drop database dboid's slot (its database or the extension is gone).
 * Returns whether there was one.
 */
bool
aw_wal_drop_slot(Oid dboid)
{
	char		name[NAMEDATALEN];
	AwSlotInfo	info;

	aw_wal_slot_info(dboid, &info);
	if (!info.exists)
		return false;
	aw_wal_slot_name(dboid, name);
	LWLockAcquire(aw_wal_lock(), LW_EXCLUSIVE);
	aw_wal_slot_info(dboid, &info);
	if (info.exists)
	{
		aw_queue_bump_slot_epoch();
		ReplicationSlotDrop(name, true);
	}
	LWLockRelease(aw_wal_lock());
	if (info.exists)
		ereport(LOG,
				(errmsg("asyncwrite dropped replication slot \"%s\"", name)));
	return info.exists;
}

/*
 * aw_wal_drop_slot where nothing may fail (after a commit): an error (the
 * slot in use by another process) becomes a WARNING.  The launcher moves an
 * idle database's slot on, so a slot left keeps no WAL for long.
 */
void
aw_wal_try_drop_slot(Oid dboid)
{
	ErrorData  *edata = aw_wal_try_slot(dboid, true);

	if (edata != NULL)
		ereport(WARNING,
				(errmsg("could not drop the replication slot \"asyncwrite_%u\" of the dropped extension: %s",
						dboid, edata->message),
				 errhint("Drop it with pg_drop_replication_slot() once it is not in use.")));
}

/* The databases that have a slot of asyncwrite, up to max; how many. */
int
aw_wal_slot_databases(Oid *dboids, int max)
{
	int			n = 0;

	if (max_replication_slots == 0)
		return 0;
	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (int i = 0; i < max_replication_slots && n < max; i++)
	{
		ReplicationSlot *s = &ReplicationSlotCtl->replication_slots[i];
		unsigned int dboid;
		char		rest;

		if (s->in_use &&
			sscanf(NameStr(s->data.name), "asyncwrite_%u%c", &dboid, &rest) == 1)
			dboids[n++] = (Oid) dboid;
	}
	LWLockRelease(ReplicationSlotControlLock);
	return n;
}

/*
 * In the postmaster at startup (also after a crash): every database with a
 * slot of asyncwrite may have durable writes in the WAL, to read back
 * before its queue gives out write ids.  The slots' directories are read,
 * as the startup process has not loaded them yet.  A server starting as a
 * standby, or in archive recovery (a restored backup: recovery.signal), has
 * no slot for its source's writes: when its recovery ends the launcher
 * looks for them in the WAL.
 */
void
aw_wal_note_slots(void)
{
	DIR		   *dir = AllocateDir("pg_replslot");
	struct dirent *de;

	struct stat st;

	if (stat(STANDBY_SIGNAL_FILE, &st) == 0 ||
		stat(RECOVERY_SIGNAL_FILE, &st) == 0)
		aw_queue_note_failover();
	if (dir == NULL)
		return;
	while ((de = ReadDir(dir, "pg_replslot")) != NULL)
	{
		unsigned int dboid;
		char		rest;

		/* "asyncwrite_<oid>" exactly; "<name>.tmp" is a slot being dropped */
		if (sscanf(de->d_name, "asyncwrite_%u%c", &dboid, &rest) != 1)
			continue;
		if (!aw_queue_note_recovery((Oid) dboid))
			ereport(WARNING,
					(errmsg("asyncwrite cannot recover the durable writes of more than 1024 databases at once"),
					 errdetail("Those of database %u are recovered at a later start.", dboid)));
	}
	FreeDir(dir);
}
