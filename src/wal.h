/*-------------------------------------------------------------------------
 *
 * wal.h
 *		The WAL layer: durable writes (asyncwrite.durable).  wal_log.c logs
 *		a transaction's queue entries as a logical message of PostgreSQL's
 *		own (no custom resource manager, so a server without the library
 *		still starts) and keeps a physical replication slot per database
 *		that holds the WAL back to the oldest unapplied durable write;
 *		wal_recover.c reads them back after a restart and refills the queue.
 *		Above the queue layer, below the launcher.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AW_WAL_H
#define AW_WAL_H

#include "queue.h"

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"

/* The prefix of asyncwrite's logical messages. */
#define AW_WAL_PREFIX		"asyncwrite"

/*
 * The prefix of a message that names the write ids whose WAL went with an
 * invalidated slot (two uint64: first and last).
 */
#define AW_WAL_LOST_PREFIX	"asyncwrite_lost"

/*
 * The prefix of the launcher's note of the highest write id each database's
 * queue gave out (AwIdsNote each): a promoted standby whose WAL lost a
 * backlog's messages still knows which ids they had.
 */
#define AW_WAL_IDS_PREFIX	"asyncwrite_ids"

typedef struct AwIdsNote
{
	Oid			dboid;
	uint32		zero;			/* padding, zeroed */
	uint64		last_id;		/* the highest id the database's queue gave */
	uint64		ceiling;		/* no id of the server is above it (on disk) */
} AwIdsNote;

/* What a replication slot of asyncwrite holds. */
typedef struct AwSlotInfo
{
	char		name[NAMEDATALEN];
	bool		exists;
	XLogRecPtr	restart_lsn;	/* InvalidXLogRecPtr: keeps no WAL */
} AwSlotInfo;

/* wal_log.c */
extern void aw_wal_check_durable(void);
extern void aw_wal_ensure_slot(void);
extern void aw_wal_keep_from(Oid dboid, XLogRecPtr lsn);
extern Size aw_wal_size(AwEntryHeader **entries, int n);
extern bool aw_wal_build(AwEntryHeader **entries, const uint64 *ids, int n,
						 StringInfo buf);
extern XLogRecPtr aw_wal_insert(StringInfo msg, bool transactional);
extern XLogRecPtr aw_wal_log(AwEntryHeader **entries, const uint64 *ids, int n,
							 bool transactional);
extern void aw_wal_flush(XLogRecPtr end, bool wait_standbys);
extern XLogRecPtr aw_wal_note_ids(const AwIdsNote *notes, int n);
extern void aw_wal_nudge_writer(TimestampTz *owed_since, long *timeout_ms);
extern void aw_wal_slot_info(Oid dboid, AwSlotInfo *info);
extern void aw_wal_advance_slot(Oid dboid, XLogRecPtr lsn);
extern bool aw_wal_drop_slot(Oid dboid);
extern void aw_wal_try_drop_slot(Oid dboid);
extern int	aw_wal_slot_databases(Oid *dboids, int max);
extern void aw_wal_note_slots(void);

/* wal_recover.c */
extern int	aw_wal_scan_databases(Oid *dboids, int max, XLogRecPtr *start);
extern uint64 aw_wal_recover(AwQueue *q, uint64 applied_id,
							 XLogRecPtr replay_from, bool have_mark);

#endif							/* AW_WAL_H */
