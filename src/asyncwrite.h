/*-------------------------------------------------------------------------
 *
 * asyncwrite.h
 *		Shared declarations of the asyncwrite extension: deferred writes
 *		through a per-database shared-memory queue applied by a background
 *		worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASYNCWRITE_H
#define ASYNCWRITE_H

#include "postgres.h"

#include "access/htup.h"
#include "access/htup_details.h"
#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/relcache.h"
#include "access/attnum.h"
#include "executor/spi.h"
#include "fmgr.h"

/* GUCs (asyncwrite.c) */
extern int	aw_queue_size_kb;
extern int	aw_max_databases;
extern int	aw_batch_size;
extern int	aw_flush_interval_ms;
extern int	aw_idle_timeout_s;
extern bool aw_enabled;
extern bool aw_transactional;
extern int	aw_max_retries;
extern int	aw_retry_delay_ms;
extern int	aw_on_full;
extern int	aw_full_timeout_ms;
extern int	aw_ddl_flush_timeout_ms;

/* asyncwrite.on_full: what a write does when its queue is full */
typedef enum AwOnFull
{
	AW_ON_FULL_WAIT,			/* wait for space up to full_timeout */
	AW_ON_FULL_ERROR,			/* fail at once */
	AW_ON_FULL_SYNC				/* write synchronously in the caller */
} AwOnFull;

/*
 * Ring entry header.  Every entry in a queue's ring starts with one, is
 * MAXALIGNed, and never wraps around the end of the ring.  Write ids are not
 * stored: they are consecutive in ring order (padding excluded), so the
 * worker derives an entry's id from the queue's applied mark.
 */
typedef struct AwEntryHeader
{
	uint32		length;			/* whole entry, header included, MAXALIGNed */
	volatile uint8 state;		/* AW_ENTRY_* */
	uint8		kind;			/* AW_KIND_* */
	uint16		flags;			/* AW_FLAG_* */
	Oid			relid;			/* target table */
	Oid			roleid;			/* role that queued the write */
	uint32		fingerprint;	/* target's row layout when queued */
	uint32		enqueued_ms;	/* aw_clock_ms() when queued */
	/* payload follows: a composite datum of the target's row type */
} AwEntryHeader;

/*
 * 24 bytes: with the row's own tuple header this is all a queued row costs
 * beyond its data (the column count is the row's own).
 */
StaticAssertDecl(sizeof(AwEntryHeader) == 24, "asyncwrite entry header grew");

/*
 * Enqueue times are kept as milliseconds modulo 2^32 (about 49 days): ages
 * are computed by unsigned subtraction, exact for any write younger than
 * that.
 */
static inline uint32
aw_clock_ms(TimestampTz ts)
{
	return (uint32) (ts / 1000);
}

/*
 * The time of an aw_clock_ms() value, seen from now: the enqueue time
 * rounded down to the millisecond, never later than it was.
 */
static inline TimestampTz
aw_clock_to_timestamp(uint32 ms, TimestampTz now)
{
	return (now / 1000 - (TimestampTz) ((uint32) (aw_clock_ms(now) - ms))) * 1000;
}

#define AW_ENTRY_RESERVED	0	/* space taken, payload being copied */
#define AW_ENTRY_READY		1	/* published: the worker may apply it */
#define AW_ENTRY_SKIPPED	2	/* consumes its write id, applies nothing */

#define AW_KIND_PAD			0	/* filler up to the end of the ring */
#define AW_KIND_INSERT		1
#define AW_KIND_UPSERT		2	/* INSERT ... ON CONFLICT (keys) DO UPDATE set */
#define AW_KIND_UPDATE		3	/* UPDATE set WHERE keys */
#define AW_KIND_DELETE		4	/* DELETE WHERE keys */
#define AW_KIND_INCREMENT	5	/* add set (deltas) to the row of keys, or
								 * insert */

#define AW_FLAG_RETRY		0x0001	/* retry of a dead letter: its id follows */
#define AW_FLAG_DEFERRED	0x0002	/* an insert whose sequence defaults the
									 * worker draws (defaults.c) */

/*
 * The columns a write other than an insert works on: its key columns (a
 * unique key of the target) and the columns it sets (upsert, update) or adds
 * to (increment).  Stored after the row in the entry.
 */
typedef struct AwColumnSets
{
	int16		nkeys;
	int16		nset;
	AttrNumber	attnums[FLEXIBLE_ARRAY_MEMBER]; /* keys, then set */
} AwColumnSets;

#define AW_COLSETS_SIZE(nkeys, nset) \
	(offsetof(AwColumnSets, attnums) + sizeof(AttrNumber) * ((nkeys) + (nset)))

/*
 * An entry's payload: the row, a composite datum of the target's row type;
 * then, MAXALIGNed, the column sets (kinds other than insert); then the
 * dead letter id (retries).
 */
#define AW_ENTRY_PAYLOAD(hdr)	((char *) (hdr) + sizeof(AwEntryHeader))
#define AW_ENTRY_DATUM_LEN(hdr) \
	(VARSIZE(AW_ENTRY_PAYLOAD(hdr)))
/* The target's column count when queued: the row's own. */
#define AW_ENTRY_NATTS(hdr) \
	HeapTupleHeaderGetNatts((HeapTupleHeader) AW_ENTRY_PAYLOAD(hdr))

/* The column sets of an entry, or NULL for an insert. */
static inline AwColumnSets *
aw_entry_colsets(const AwEntryHeader *hdr)
{
	if (hdr->kind == AW_KIND_INSERT)
		return NULL;
	return (AwColumnSets *) (AW_ENTRY_PAYLOAD(hdr) + MAXALIGN(AW_ENTRY_DATUM_LEN(hdr)));
}

/* Bytes the column sets take in an entry (0 for an insert). */
static inline Size
aw_entry_colsets_size(const AwEntryHeader *hdr)
{
	AwColumnSets *cs = aw_entry_colsets(hdr);

	return cs ? MAXALIGN(AW_COLSETS_SIZE(cs->nkeys, cs->nset)) : 0;
}

/* A heap tuple over a composite datum (a queued row), for deforming it. */
static inline void
aw_tuple_over(HeapTupleHeader td, HeapTupleData *tuple)
{
	tuple->t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tuple->t_self);
	tuple->t_tableOid = InvalidOid;
	tuple->t_data = td;
}

/* Dead letter id of a retry entry. */
#define AW_ENTRY_RETRY_ID(hdr) \
	(*(int64 *) (AW_ENTRY_PAYLOAD(hdr) + MAXALIGN(AW_ENTRY_DATUM_LEN(hdr)) + \
				 aw_entry_colsets_size(hdr)))

/*
 * One queue per database, bound to it on first use.
 *
 * Locking: "lock" guards the producer side (head, next_write_id, enqueued),
 * the worker registration (worker_pid, worker_latch, launching), the flags
 * and dboid.  dboid changes only while AwControl->lock is also held
 * exclusively, so a lookup under the shared lock sees a stable binding.  The
 * consumer side (tail, applied_write_id and the counters) is written only by
 * the queue's worker, with a write barrier before tail moves so that
 * producers never reuse bytes the worker still reads.  It is an LWLock,
 * not a spinlock: with many producers on few cores a preempted holder
 * makes spinlock waiters back off for milliseconds, while LWLock waiters
 * sleep and are woken at release.
 */
typedef struct AwQueue
{
	LWLock		lock;			/* short sections only; see above */
	Oid			dboid;			/* InvalidOid: slot free */
	bool		paused;
	bool		launching;		/* a worker was requested, not yet running */
	bool		hold;			/* database DDL in progress: no worker */
	bool		exit_requested; /* worker must exit after the current batch */
	bool		extension_dropped;	/* a DROP EXTENSION committed: discard */
	pid_t		worker_pid;
	Latch	   *worker_latch;
	TimestampTz launch_time;
	uint64		head;			/* ring position of the next reservation */
	uint64		next_write_id;	/* id of the next reservation */
	uint64		enqueued;		/* writes queued since startup */

	pg_atomic_uint64 tail;		/* ring position of the oldest entry */
	pg_atomic_uint64 applied_write_id;	/* every id <= this is done */
	pg_atomic_uint64 applied;
	pg_atomic_uint64 failed;
	pg_atomic_uint64 batches;
	pg_atomic_uint64 last_applied_at;
	pg_atomic_uint32 applying;	/* a batch is between start and release */
	pg_atomic_uint64 batch_end; /* ring position after the batch in flight */
	pg_atomic_uint64 batch_last_id; /* last write id of that batch */
	pg_atomic_uint32 flush_waiters;
	pg_atomic_uint64 sweeps_requested;	/* COMMIT PREPAREDs seen */
	pg_atomic_uint64 sweeps_done;	/* requests whose writes are queued */
	pg_atomic_uint64 sweep_after_id;	/* last write id at the newest request */

	ConditionVariable applied_cv;	/* applied_write_id advanced */
	ConditionVariable space_cv; /* tail advanced */
	ConditionVariable worker_cv;	/* worker started or exited */
} AwQueue;

typedef struct AwControl
{
	LWLock	   *lock;			/* guards queue binding (dboid) */
	int			queue_tranche;	/* tranche of the queues' locks */
	int			max_databases;
	uint64		capacity;		/* ring bytes per queue */
	uint64		id_high_water;	/* highest id of any unbound queue */
	AwQueue		queues[FLEXIBLE_ARRAY_MEMBER];
} AwControl;

/* queue.c */
extern AwControl *aw_control;
extern Size aw_shmem_size(void);
extern void aw_shmem_init(void);
extern char *aw_queue_ring(AwQueue *q);
extern AwQueue *aw_queue_lookup(Oid dboid);
extern AwQueue *aw_queue_bind(Oid dboid);
extern void aw_check_available(void);

/* What a producer needs to wake the worker once its entry is published. */
typedef struct AwPublish
{
	AwQueue    *queue;
	Latch	   *latch;
	bool		need_worker;
	bool		wake;
} AwPublish;

/* One write to queue, as aw_queue_prepare_many() takes it. */
typedef struct AwWriteSpec
{
	Oid			relid;
	Oid			roleid;
	uint32		fingerprint;
	uint8		kind;
	uint32		flags;
	const void *payload;
	Size		payload_len;
	const void *extra;
	Size		extra_len;
} AwWriteSpec;

extern Size aw_entry_size(Size payload_len, Size extra_len);
extern void aw_queue_prepare_many(int n, const AwWriteSpec *writes,
								  AwEntryHeader **entries, uint64 *first_id,
								  AwPublish *publish);
extern AwEntryHeader *aw_queue_prepare(Oid relid, Oid roleid, uint32 fingerprint,
									   uint8 kind, uint32 flags,
									   const void *payload, Size payload_len,
									   const void *extra, Size extra_len,
									   uint64 *write_id, AwPublish *publish);
extern void aw_entry_fill(AwEntryHeader *entry, const AwWriteSpec *w,
						  TimestampTz now);
extern void aw_queue_publish(AwEntryHeader *entry, uint8 state);
extern void aw_queue_wake(AwPublish *publish);
extern bool aw_queue_submit(Oid relid, Oid roleid, uint32 fingerprint,
							uint8 kind, uint32 flags,
							const void *payload, Size payload_len,
							const void *extra, Size extra_len,
							uint64 *write_id);
extern uint64 aw_queue_last_write_id(AwQueue *q);
extern uint64 aw_queue_discard(AwQueue *q);
extern AwEntryHeader *aw_queue_entry_at(AwQueue *q, uint64 pos, uint64 *entry_pos);
extern void aw_queue_consume(AwQueue *q, uint64 new_tail, uint64 last_id);
extern TimestampTz aw_queue_oldest_enqueued_at(AwQueue *q);

/* worker.c */
extern bool aw_is_worker;
extern void aw_worker_check_exit(void);
extern void aw_worker_launch(AwQueue *q);
extern void aw_worker_ensure(AwQueue *q);
extern bool aw_worker_stop(AwQueue *q, int timeout_ms);

/* flush.c */
extern bool aw_wait_applied(AwQueue *q, uint64 target, int64 timeout_ms);
extern void aw_check_worker_blocked(AwQueue *q, const char *what);
extern PGDLLEXPORT void aw_worker_main(Datum arg);
extern PGDLLEXPORT void aw_launcher_main(Datum arg);
extern void aw_register_launcher(void);

/* apply.c */
typedef struct AwApplyRow
{
	AwEntryHeader *hdr;
	uint64		write_id;
	uint64		end_pos;		/* ring position just after the entry */
} AwApplyRow;
extern int	aw_apply_batch(AwQueue *q, AwApplyRow *rows, int nrows,
						   uint64 *napplied, uint64 *nfailed);
extern void aw_apply_in_xact(AwApplyRow *rows, int nrows, uint64 *napplied,
							 uint64 *nfailed);
extern void aw_apply_sync(Relation rel, Datum row, uint8 kind, uint16 flags,
						  const AwColumnSets *cs);
extern void aw_apply_sync_entry(AwEntryHeader *hdr);

/* bulk_insert.c */
extern bool aw_bulk_insert_usable(Relation rel);
extern void aw_bulk_insert(Relation rel, AwApplyRow *rows, int n);

/* defaults.c */
typedef struct AwDeferredDefaults AwDeferredDefaults;
extern Oid	aw_default_sequence(Relation rel, AttrNumber attnum, bool *identity);
extern void aw_check_default_sequence(Oid seqid);
extern AwDeferredDefaults *aw_deferred_defaults(Relation rel);
extern bool aw_deferred_fill(AwDeferredDefaults *d, Datum *values, bool *isnull);
extern Datum aw_deferred_fill_row(AwDeferredDefaults *d, Relation rel, Datum row);

/* xact.c */
extern bool aw_xact_keep(Oid relid, Oid roleid, uint32 fingerprint,
						 uint8 kind, uint32 flags,
						 const void *payload, Size payload_len,
						 const void *extra, Size extra_len);
extern int	aw_xact_pending_count(void);
extern void aw_xact_write_now(bool switch_mode);
extern AwEntryHeader *aw_entry_from_spec(const AwWriteSpec *w);

/* prepared.c */
extern void aw_prepared_store(Oid relid, Oid roleid, uint32 fingerprint,
							  uint8 kind, uint32 flags,
							  const char *payload, Size payload_len,
							  const char *extra, Size extra_len);
extern uint64 aw_prepared_sweep(void);
extern void aw_xact_note_write_id(uint64 write_id);

/* plan.c */
typedef struct AwPlan
{
	SPIPlanPtr	plan;
	Oid			rowtype;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	bool		keys_bitwise;	/* upsert/update: coalesce by stored bytes */
} AwPlan;
extern Relation aw_plan_open_target(AwEntryHeader *hdr);
extern AwPlan *aw_plan_for(AwEntryHeader *hdr, Relation rel);
extern bool aw_layout_compatible(TupleDesc desc, AwEntryHeader *hdr);
extern const char *aw_kind_name(uint8 kind);
extern void aw_plan_coalesce(Relation rel, AwApplyRow *rows, int n, bool *keep);
extern bool aw_attnum_in(const AttrNumber *attnums, int n, AttrNumber attnum);
extern bool aw_find_key_index(Relation rel, const AttrNumber *keys, int nkeys,
							  bool for_conflict, Oid *ops);

/* convert.c */
typedef struct AwTarget AwTarget;
extern AwTarget *aw_target_get(Relation rel);
extern uint32 aw_target_fingerprint(AwTarget *t);
extern bool aw_target_row_deferred(AwTarget *t, Datum row);
extern bool aw_target_key_known(AwTarget *t, const AttrNumber *attnums,
								int nkeys, bool for_conflict);
extern void aw_target_key_remember(AwTarget *t, const AttrNumber *attnums,
								   int nkeys, bool for_conflict);
extern Datum aw_row_from_jsonb(Relation rel, AwTarget *t, Datum jsonb,
							   int options);
#define AW_CONVERT_RESTORING	0x01
#define AW_CONVERT_NO_DEFAULTS	0x02
#define AW_CONVERT_INSERT		0x04
extern Datum aw_row_from_jsonb_ext(Relation rel, AwTarget *t, Datum jsonb,
								   int options, bool **given_out);
extern Datum aw_row_from_record(Relation rel, AwTarget *t, Datum rec,
								bool ignore_unknown, const char *op_column,
								const char *op_value);
extern uint32 aw_tupdesc_fingerprint(TupleDesc desc);
extern uint32 aw_tupdesc_fingerprint_prefix(TupleDesc desc, int natts);

/* enqueue.c */
extern Relation aw_open_target(Oid relid);
extern void aw_check_insert_privileges(Relation rel);
extern void aw_check_schema_usage(Relation rel);
extern bool aw_call_transactional(FunctionCallInfo fcinfo, int argno);
extern void aw_require_arg(FunctionCallInfo fcinfo, int argno, const char *what);
extern Datum aw_submit_write(FunctionCallInfo fcinfo, Relation rel, AwTarget *t,
							 Datum row, uint8 kind, const AwColumnSets *cs,
							 bool transactional);

/* persist.c */
extern void aw_persist_save(int code, Datum arg);
extern void aw_persist_load(void);

/* ddl.c */
extern void aw_ddl_install_hook(void);

#endif							/* ASYNCWRITE_H */
