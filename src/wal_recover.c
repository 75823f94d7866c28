/*-------------------------------------------------------------------------
 *
 * wal_recover.c
 *		Read a database's durable writes back from the WAL after a restart
 *		and refill its queue with them, before any new write gets an id.
 *
 * The apply worker reads from its slot's position (never before the
 * applied mark's replay position) to the end of the flushed WAL with an
 * XLogReader, as contrib/pg_walinspect does.  It keeps the messages of
 * asyncwrite in its database whose transaction's commit record it sees
 * (and every non-transactional one), and of those the writes whose ids are
 * above the applied mark: the mark commits with the rows applied, so none
 * is applied twice.  Writes the queue file brought back (not durable ones)
 * are merged in id order; every other id becomes part of a gap entry, and
 * ids go on above every id given out before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "storage/fd.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "wal.h"

/* One write found for the queue, with its id. */
typedef struct AwFound
{
	uint64		id;
	AwEntryHeader *entry;
} AwFound;

/* The messages of one transaction, until its commit or abort is seen. */
typedef struct AwXactMessages
{
	TransactionId xid;			/* hash key */
	List	   *messages;		/* StringInfo each */
} AwXactMessages;

/* The writes found so far. */
typedef struct AwFoundSet
{
	AwFound    *items;
	int			n;
	int			size;
	uint64		applied_id;		/* keep only ids above it */
	uint64		from_wal;
	uint64		high_water;		/* highest id the WAL shows given out */
	uint64		ceiling;		/* and the highest id ceiling it shows */
	List	   *lost;			/* ranges of ids whose WAL went (uint64[2]) */
	List	   *reported;		/* ranges of ids reported lost (uint64[2]) */
} AwFoundSet;

/*
 * Add one write (copied) to the set, unless it is applied already; returns
 * whether it was added.
 */
static bool
aw_found_add(AwFoundSet *set, uint64 id, const AwEntryHeader *hdr)
{
	if (id <= set->applied_id)
		return false;
	if (set->n == set->size)
	{
		set->size = Max(64, set->size * 2);
		set->items = repalloc_huge(set->items, sizeof(AwFound) * set->size);
	}
	set->items[set->n].id = id;
	set->items[set->n].entry = palloc(hdr->length);
	memcpy(set->items[set->n].entry, hdr, hdr->length);
	set->n++;
	return true;
}

/* Add the writes of one committed message; false if it is malformed. */
static bool
aw_found_add_message(AwFoundSet *set, StringInfo msg)
{
	uint32		header[2];
	Size		off = sizeof(header);

	if ((Size) msg->len < sizeof(header))
		return false;
	memcpy(header, msg->data, sizeof(header));
	if (header[0] != 1)
		return false;
	for (uint32 i = 0; i < header[1]; i++)
	{
		uint64		id;
		AwEntryHeader hdr;
		AwEntryHeader *entry;

		if (off + sizeof(id) + sizeof(hdr) > (Size) msg->len)
			return false;
		memcpy(&id, msg->data + off, sizeof(id));
		memcpy(&hdr, msg->data + off + sizeof(id), sizeof(hdr));
		set->high_water = Max(set->high_water, id);
		off += sizeof(id);
		if (hdr.length < sizeof(hdr) || hdr.length != MAXALIGN(hdr.length) ||
			off + hdr.length > (Size) msg->len)
			return false;
		/* Aligned, as the apply path reads it. */
		entry = palloc(hdr.length);
		memcpy(entry, msg->data + off, hdr.length);
		if (aw_found_add(set, id, entry))
			set->from_wal++;
		pfree(entry);
		off += hdr.length;
	}
	return true;
}

/* Read a launcher's note of the highest ids given out (AwIdsNote each). */
static void
aw_found_note_ids(AwFoundSet *set, const char *data, Size len)
{
	for (Size off = 0; off + sizeof(AwIdsNote) <= len; off += sizeof(AwIdsNote))
	{
		AwIdsNote	note;

		memcpy(&note, data + off, sizeof(note));
		if (note.dboid == MyDatabaseId)
			set->high_water = Max(set->high_water, note.last_id);
		set->ceiling = Max(set->ceiling, note.ceiling);
	}
}

/* qsort comparator: ranges of ids (uint64[2]) by their first id. */
static int
aw_range_cmp(const void *a, const void *b)
{
	uint64		x = ((const uint64 *) a)[0];
	uint64		y = ((const uint64 *) b)[0];

	return x < y ? -1 : x > y ? 1 : 0;
}

/* qsort comparator: by write id. */
static int
aw_found_cmp(const void *a, const void *b)
{
	uint64		x = ((const AwFound *) a)->id;
	uint64		y = ((const AwFound *) b)->id;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * A reader of the local WAL up to its flushed end, as contrib/pg_walinspect
 * makes one; *priv says when it reached the end.
 */
static XLogReaderState *
aw_wal_reader(ReadLocalXLogPageNoWaitPrivate **priv)
{
	XLogReaderState *reader;

	*priv = palloc0(sizeof(ReadLocalXLogPageNoWaitPrivate));
	reader = XLogReaderAllocate(wal_segment_size, NULL,
								XL_ROUTINE(.page_read = &read_local_xlog_page_no_wait,
										   .segment_open = &wal_segment_open,
										   .segment_close = &wal_segment_close),
								*priv);
	if (reader == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed while allocating a WAL reading processor.")));
	return reader;
}

/*
 * Read the WAL from start to its flushed end, adding the writes of
 * committed messages of this database logged at or after replay_from.
 * Returns false, with a WARNING, when the WAL could not be read to its end.
 */
static bool
aw_wal_scan(AwFoundSet *set, XLogRecPtr start, XLogRecPtr replay_from)
{
	ReadLocalXLogPageNoWaitPrivate *priv;
	XLogReaderState *reader;
	XLogRecPtr	first;
	HASHCTL		ctl;
	HTAB	   *xacts;
	bool		complete = true;

	ctl.keysize = sizeof(TransactionId);
	ctl.entrysize = sizeof(AwXactMessages);
	ctl.hcxt = CurrentMemoryContext;
	xacts = hash_create("asyncwrite recovery", 64, &ctl,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	reader = aw_wal_reader(&priv);
	first = XLogFindNextRecord(reader, start);
	if (XLogRecPtrIsInvalid(first))
	{
		/* Nothing logged at or after start (the slot is at the end). */
		XLogReaderFree(reader);
		return true;
	}
	for (;;)
	{
		char	   *errormsg = NULL;
		XLogRecord *record = XLogReadRecord(reader, &errormsg);
		uint8		rmid;
		uint8		info;

		if (record == NULL)
		{
			if (!priv->end_of_wal)
			{
				complete = false;
				ereport(WARNING,
						(errmsg("asyncwrite could not read the WAL at %X/%X: %s",
								LSN_FORMAT_ARGS(reader->EndRecPtr),
								errormsg ? errormsg : "no record"),
						 errdetail("Durable writes logged after it are not recovered.")));
			}
			break;
		}
		rmid = XLogRecGetRmid(reader);
		info = XLogRecGetInfo(reader) & ~XLR_INFO_MASK;
		if (rmid == RM_LOGICALMSG_ID && info == XLOG_LOGICAL_MESSAGE)
		{
			xl_logical_message *m = (xl_logical_message *) XLogRecGetData(reader);
			StringInfo	copy;

			if (m->prefix_size == sizeof(AW_WAL_IDS_PREFIX) &&
				strcmp(m->message, AW_WAL_IDS_PREFIX) == 0)
			{
				aw_found_note_ids(set, m->message + m->prefix_size,
								  m->message_size);
				continue;
			}
			if (m->dbId == MyDatabaseId &&
				m->prefix_size == sizeof(AW_WAL_LOST_PREFIX) &&
				strcmp(m->message, AW_WAL_LOST_PREFIX) == 0 &&
				m->message_size == 2 * sizeof(uint64))
			{
				uint64	   *range = palloc(2 * sizeof(uint64));

				memcpy(range, m->message + m->prefix_size, 2 * sizeof(uint64));
				set->lost = lappend(set->lost, range);
				continue;
			}
			if (m->dbId != MyDatabaseId ||
				m->prefix_size != sizeof(AW_WAL_PREFIX) ||
				strcmp(m->message, AW_WAL_PREFIX) != 0 ||
				reader->ReadRecPtr < replay_from)
				continue;
			copy = makeStringInfo();
			appendBinaryStringInfo(copy, m->message + m->prefix_size,
								   m->message_size);
			if (!m->transactional)
			{
				if (!aw_found_add_message(set, copy))
					ereport(WARNING,
							(errmsg("asyncwrite skipped a malformed message in the WAL at %X/%X",
									LSN_FORMAT_ARGS(reader->ReadRecPtr))));
			}
			else
			{
				TransactionId xid = XLogRecGetXid(reader);
				bool		found;
				AwXactMessages *x = hash_search(xacts, &xid, HASH_ENTER, &found);

				if (!found)
					x->messages = NIL;
				x->messages = lappend(x->messages, copy);
			}
		}
		else if (rmid == RM_XACT_ID)
		{
			uint8		op = XLogRecGetInfo(reader) & XLOG_XACT_OPMASK;
			TransactionId xid = XLogRecGetXid(reader);
			AwXactMessages *x;
			ListCell   *lc;

			if (op != XLOG_XACT_COMMIT && op != XLOG_XACT_ABORT)
				continue;
			x = hash_search(xacts, &xid, HASH_FIND, NULL);
			if (x == NULL)
				continue;
			if (op == XLOG_XACT_COMMIT)
			{
				foreach(lc, x->messages)
				{
					if (!aw_found_add_message(set, (StringInfo) lfirst(lc)))
						ereport(WARNING,
								(errmsg("asyncwrite skipped a malformed message of transaction %u in the WAL",
										xid)));
				}
			}
			(void) hash_search(xacts, &xid, HASH_REMOVE, NULL);
		}
	}
	XLogReaderFree(reader);
	hash_destroy(xacts);
	return complete;
}

/* The start of the oldest WAL segment left in pg_wal, or 0 if none. */
static XLogRecPtr
aw_wal_oldest_lsn(void)
{
	DIR		   *dir = AllocateDir(XLOGDIR);
	struct dirent *de;
	XLogSegNo	oldest = 0;
	XLogRecPtr	lsn = InvalidXLogRecPtr;

	while ((de = ReadDir(dir, XLOGDIR)) != NULL)
	{
		TimeLineID	tli;
		XLogSegNo	segno;

		if (!IsXLogFileName(de->d_name))
			continue;
		XLogFromFileName(de->d_name, &tli, &segno, wal_segment_size);
		if (oldest == 0 || segno < oldest)
			oldest = segno;
	}
	FreeDir(dir);
	if (oldest != 0)
		XLogSegNoOffsetToRecPtr(oldest, 0, wal_segment_size, lsn);
	return lsn;
}

/*
 * aw_wal_scan, but a WAL read that fails with an error (a segment gone)
 * ends the scan with a WARNING instead of the worker: the writes found so
 * far are kept.  Returns whether the WAL was read to its end.
 */
static bool
aw_wal_scan_safely(AwFoundSet *set, XLogRecPtr start, XLogRecPtr replay_from)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool complete = false;

	PG_TRY();
	{
		complete = aw_wal_scan(set, start, replay_from);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(WARNING,
				(errmsg("asyncwrite could not read the WAL of durable writes: %s",
						edata->message)));
	}
	PG_END_TRY();
	return complete;
}

/* How many of the writes found have ids from first to last. */
static uint64
aw_found_between(AwFoundSet *set, uint64 first, uint64 last)
{
	uint64		n = 0;

	for (int i = 0; i < set->n; i++)
		if (set->items[i].id >= first && set->items[i].id <= last)
			n++;
	return n;
}

/* Keep a range of ids reported lost, for the statistics (aw_wal_count_lost). */
static void
aw_found_lost(AwFoundSet *set, uint64 first, uint64 last)
{
	uint64	   *range = palloc(2 * sizeof(uint64));

	range[0] = first;
	range[1] = last;
	set->reported = lappend(set->reported, range);
}

/*
 * Say which durable writes may be lost: those above the applied mark (or
 * the ids already reported, after) and below the oldest write found in the
 * WAL that is left; when none was found, or the WAL could not be read to its
 * end (complete false), up to the highest id the WAL shows given out (a
 * note of the launcher's); with unbounded, above the mark when it shows
 * none.  Writes found are not lost.
 */
static void
aw_wal_report_lost(AwFoundSet *set, uint64 after, bool unbounded,
				   bool complete)
{
	uint64		oldest = 0;
	uint64		newest = 0;
	uint64		last;
	uint64		found;
	uint64		lost;

	for (int i = 0; i < set->n; i++)
	{
		uint64		id = set->items[i].id;

		if (!(set->items[i].entry->flags & AW_FLAG_DURABLE) || id <= after)
			continue;
		if (oldest == 0 || id < oldest)
			oldest = id;
		newest = Max(newest, id);
	}
	last = (complete && oldest != 0) ? oldest - 1 : Max(set->high_water, newest);
	found = last > after ? aw_found_between(set, after + 1, last) : 0;
	lost = (last > after && last - after > found) ? last - after - found : 0;
	if (lost > 0)
	{
		aw_found_lost(set, after + 1, last);
		ereport(WARNING,
				(errmsg("durable asyncwrite writes of database %u with write ids " UINT64_FORMAT " to " UINT64_FORMAT " may be lost",
						MyDatabaseId, after + 1, last),
				 errdetail("The WAL that kept them is gone: the replication slot \"asyncwrite_%u\" was invalidated (max_slot_wal_keep_size), this server was a standby or a restored backup whose WAL starts later, or the WAL could not be read.  At most " UINT64_FORMAT " writes were lost; the others are queued again.",
						   MyDatabaseId, lost),
				 errhint("Compare the target tables with what the application wrote since the last restart.")));
	}
	else if (unbounded && oldest == 0 && set->high_water <= after)
		ereport(WARNING,
				(errmsg("durable asyncwrite writes of database %u above write id " UINT64_FORMAT " may be lost",
						MyDatabaseId, after),
				 errdetail("The WAL that kept them is gone: the replication slot \"asyncwrite_%u\" was invalidated (max_slot_wal_keep_size), this server was a standby or a restored backup whose WAL starts later, or the WAL could not be read.",
						   MyDatabaseId),
				 errhint("Compare the target tables with what the application wrote since the last restart.")));
}

/*
 * Count the ranges reported lost in the statistics, once the queue is
 * rebuilt (a recovery that fails is done again): merged where they
 * overlap, without the ids of writes found, which are queued again.  The
 * items are sorted by id.
 */
static void
aw_wal_count_lost(AwQueue *q, AwFoundSet *set)
{
	int			n = list_length(set->reported);
	uint64		(*ranges)[2];
	int			k = 0;
	int			i = 0;
	ListCell   *lc;

	if (n == 0)
		return;
	ranges = palloc(sizeof(uint64[2]) * n);
	foreach(lc, set->reported)
	{
		memcpy(ranges[i], lfirst(lc), sizeof(uint64[2]));
		i++;
	}
	qsort(ranges, n, sizeof(uint64[2]), aw_range_cmp);
	for (i = 0; i < n; i++)
	{
		uint64		first = ranges[i][0];
		uint64		last = ranges[i][1];

		/* Merge the ranges that overlap or touch this one. */
		while (i + 1 < n && ranges[i + 1][0] <= last + 1)
			last = Max(last, ranges[++i][1]);
		/* Count what lies between the writes found. */
		while (first <= last)
		{
			while (k < set->n && set->items[k].id < first)
				k++;
			if (k < set->n && set->items[k].id <= last)
			{
				if (set->items[k].id > first)
					aw_queue_note_lost(q, first, set->items[k].id - 1);
				first = set->items[k].id + 1;
			}
			else
			{
				aw_queue_note_lost(q, first, last);
				break;
			}
		}
	}
	pfree(ranges);
}

/*
 * Report the writes whose WAL went with a slot invalidated before the one
 * read now (recorded when it was made again) and that are not applied.
 * Returns the highest id reported, or applied_id.
 */
static uint64
aw_wal_report_lost_ranges(AwFoundSet *set, uint64 applied_id)
{
	ListCell   *lc;
	uint64		reported = applied_id;

	foreach(lc, set->lost)
	{
		uint64	   *range = (uint64 *) lfirst(lc);
		uint64		from = Max(range[0], applied_id + 1);

		if (from > range[1])
			continue;
		aw_found_lost(set, from, range[1]);
		reported = Max(reported, range[1]);
		ereport(WARNING,
				(errmsg("durable asyncwrite writes of database %u with write ids " UINT64_FORMAT " to " UINT64_FORMAT " may be lost",
						MyDatabaseId, from, range[1]),
				 errdetail("Their WAL went with the replication slot \"asyncwrite_%u\", invalidated (max_slot_wal_keep_size) before they were applied; at most " UINT64_FORMAT " writes were lost.",
						   MyDatabaseId, range[1] - from + 1),
				 errhint("Compare the target tables with what the application wrote before the last restart.")));
	}
	return reported;
}

/* Add dboid to dboids[0..n) unless there, up to max; returns the new n. */
static int
aw_scan_add_database(Oid *dboids, int n, int max, Oid dboid)
{
	for (int i = 0; i < n; i++)
		if (dboids[i] == dboid)
			return n;
	if (n < max)
		dboids[n++] = dboid;
	return n;
}

/*
 * In the launcher of a promoted standby: the databases with messages of
 * asyncwrite in the WAL that is left (from *start), or named by a note of
 * the ids they gave out, up to max; returns how many, or -1 when the WAL
 * could not be read to its end.
 */
int
aw_wal_scan_databases(Oid *dboids, int max, XLogRecPtr *start_out)
{
	ReadLocalXLogPageNoWaitPrivate *priv;
	XLogRecPtr	start = aw_wal_oldest_lsn();
	XLogReaderState *reader;
	int			n = 0;

	*start_out = start;
	if (XLogRecPtrIsInvalid(start))
		return 0;
	reader = aw_wal_reader(&priv);
	if (!XLogRecPtrIsInvalid(XLogFindNextRecord(reader, start)))
	{
		for (;;)
		{
			char	   *errormsg = NULL;
			xl_logical_message *m;

			if (XLogReadRecord(reader, &errormsg) == NULL)
			{
				if (!priv->end_of_wal)
					n = -1;
				break;
			}
			if (XLogRecGetRmid(reader) != RM_LOGICALMSG_ID ||
				(XLogRecGetInfo(reader) & ~XLR_INFO_MASK) != XLOG_LOGICAL_MESSAGE)
				continue;
			m = (xl_logical_message *) XLogRecGetData(reader);
			if (m->prefix_size == sizeof(AW_WAL_IDS_PREFIX) &&
				strcmp(m->message, AW_WAL_IDS_PREFIX) == 0)
			{
				/* Databases that gave out ids: their writes may be lost. */
				for (Size off = 0; off + sizeof(AwIdsNote) <= m->message_size;
					 off += sizeof(AwIdsNote))
				{
					AwIdsNote	note;

					memcpy(&note, m->message + m->prefix_size + off, sizeof(note));
					n = aw_scan_add_database(dboids, n, max, note.dboid);
				}
				continue;
			}
			if (m->prefix_size != sizeof(AW_WAL_PREFIX) ||
				strcmp(m->message, AW_WAL_PREFIX) != 0)
				continue;
			n = aw_scan_add_database(dboids, n, max, m->dbId);
		}
	}
	XLogReaderFree(reader);
	return n;
}

/*
 * In the worker of a recovering queue: read its database's durable writes
 * above applied_id back from the WAL, merge them with the writes the queue
 * file restored, and refill the queue, which then gives out ids again.
 * Without the mark (have_mark false: the extension is older than 1.1, and
 * its writes were not durable) nothing is read: what was applied is not
 * known.  Returns how many writes came back from the WAL.
 */
uint64
aw_wal_recover(AwQueue *q, uint64 applied_id, XLogRecPtr replay_from,
			   bool have_mark)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext,
											  "asyncwrite recovery",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	AwFoundSet	set;
	AwSlotInfo	info;
	AwQueueIter it;
	AwEntryHeader *hdr;
	AwEntryHeader **entries;
	uint64	   *ids;
	int			n = 0;
	uint64		recovered;
	uint64		reported;

	memset(&set, 0, sizeof(set));
	set.applied_id = applied_id;
	set.items = palloc(sizeof(AwFound) * 64);
	set.size = 64;

	/* What the queue file restored (writes that are not durable). */
	aw_queue_iter_begin_recovering(q, &it);
	while ((hdr = aw_queue_iter_next(&it)) != NULL)
		if (hdr->state == AW_ENTRY_READY && hdr->kind != AW_KIND_GAP)
			(void) aw_found_add(&set, it.write_id, hdr);

	aw_wal_slot_info(MyDatabaseId, &info);
	if (!info.exists && have_mark)
	{
		/*
		 * No slot: a promoted standby (or a restored backup).  Its WAL holds
		 * what the primary logged since its last restartpoint; the mark's
		 * replay position, replicated with the rows, says where the primary's
		 * slot was.  A slot of our own keeps what is read.
		 */
		XLogRecPtr	oldest = aw_wal_oldest_lsn();
		XLogRecPtr	start = Max(replay_from, oldest);
		bool		complete;

		aw_wal_keep_from(MyDatabaseId, start);
		complete = aw_wal_scan_safely(&set, start, replay_from);
		reported = aw_wal_report_lost_ranges(&set, applied_id);
		if (replay_from < oldest || !complete)
			aw_wal_report_lost(&set, reported, true, complete);
	}
	else if (info.exists && have_mark)
	{
		bool		invalidated = XLogRecPtrIsInvalid(info.restart_lsn);
		XLogRecPtr	start = invalidated ? aw_wal_oldest_lsn() : info.restart_lsn;
		bool		complete = aw_wal_scan_safely(&set, Max(start, replay_from),
												  replay_from);

		/*
		 * An invalidated slot let the WAL of the oldest writes go: what is
		 * left is read, and the writes between the mark and the oldest one
		 * found may be lost.  On a server that started as a standby or a
		 * restored backup, a slot that keeps no WAL from the mark's replay
		 * position on was made by the launcher after the recovery, from the
		 * oldest WAL left, which may start after writes not applied.  (Else
		 * it is routine: a slot moves on past skipped ids, which move no
		 * mark.)
		 */
		reported = aw_wal_report_lost_ranges(&set, applied_id);
		if (invalidated || !complete)
			aw_wal_report_lost(&set, reported, true, complete);
		else if (replay_from < start && aw_queue_started_in_recovery())
			aw_wal_report_lost(&set, reported, false, complete);
	}

	/* In id order; a write found twice (it cannot be) counts once. */
	qsort(set.items, set.n, sizeof(AwFound), aw_found_cmp);
	entries = palloc(sizeof(AwEntryHeader *) * Max(1, set.n));
	ids = palloc(sizeof(uint64) * Max(1, set.n));
	for (int i = 0; i < set.n; i++)
	{
		if (n > 0 && ids[n - 1] == set.items[i].id)
			continue;
		entries[n] = set.items[i].entry;
		ids[n] = set.items[i].id;
		n++;
	}
	recovered = set.from_wal;
	if (!aw_queue_rebuild(q, applied_id, Max(set.high_water, set.ceiling),
						  n, entries, ids, recovered))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the %d durable writes to recover in database %u do not fit in the asyncwrite queue",
						n, MyDatabaseId),
				 errhint("Increase asyncwrite.queue_size and restart the server.")));
	aw_wal_count_lost(q, &set);
	if (recovered > 0)
		ereport(LOG,
				(errmsg("asyncwrite recovered " UINT64_FORMAT " durable writes of database %u from the WAL",
						recovered, MyDatabaseId),
				 errdetail("Writes above id " UINT64_FORMAT " are queued again.",
						   applied_id)));
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return recovered;
}
