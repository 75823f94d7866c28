/*-------------------------------------------------------------------------
 *
 * queue.h
 *		The queue layer: one shared-memory ring of write entries per
 *		database (queue.c) and the file that keeps them across a clean stop
 *		(queue_file.c).  It knows nothing of the layers above it; the queue
 *		struct is private to queue.c and changed only through these
 *		functions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AW_QUEUE_H
#define AW_QUEUE_H

#include "queue_entry.h"

#include "access/xlogdefs.h"
#include "nodes/pg_list.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"

/* A database's queue; its fields are private to queue.c. */
typedef struct AwQueue AwQueue;

/* How many ranges of lost write ids a queue's statistics keep. */
#define AW_LOST_RANGES	8

/* A consistent copy of a queue's state, read under its lock. */
typedef struct AwQueueState
{
	Oid			dboid;			/* InvalidOid: slot free */
	bool		paused;
	bool		hold;			/* database DDL in progress: no worker */
	bool		closed;			/* the database allows no connections */
	pid_t		worker_pid;		/* 0: no worker */
	Latch	   *worker_latch;
	bool		applying;		/* a batch is between start and release */
	uint64		head;			/* ring position of the next reservation */
	uint64		tail;			/* ring position of the oldest entry */
	uint64		last_write_id;	/* highest id handed out */
	uint64		applied_write_id;	/* every id <= this is done */
	uint64		enqueued;		/* counters since startup */
	uint64		applied;
	uint64		failed;
	uint64		batches;
	TimestampTz last_applied_at;
	uint64		sweeps_requested;	/* COMMIT PREPAREDs seen */
	uint64		sweeps_done;	/* requests whose writes are applied */
	uint32		flush_waiters;	/* backends waiting in aw_wait_applied() */
	bool		recovering;		/* reading durable writes back from the WAL */
	uint64		recovered;		/* writes read back at the last recovery */
	uint64		lost;			/* writes found lost (aw_queue_note_lost) */
	int			nlost_ranges;	/* the newest AW_LOST_RANGES of their ranges */
	uint64		lost_ranges[AW_LOST_RANGES][2];
	uint64		urgent_write_id;	/* highest id published as urgent */
} AwQueueState;

/* Result of aw_queue_reserve(). */
typedef enum AwReserveResult
{
	AW_RESERVE_OK,
	AW_RESERVE_FULL,			/* no room now */
	AW_RESERVE_REBOUND,			/* the slot now belongs to another database */
	AW_RESERVE_RECOVERING		/* durable writes are being read back from the
								 * WAL: wait for AW_CV_WORKER */
} AwReserveResult;

/* A reservation, and what the producer needs to wake or start the worker. */
typedef struct AwReservation
{
	AwQueue    *queue;
	AwEntryHeader *entry;		/* the first entry, marked reserved */
	uint64		first_id;		/* its write id; the others follow */
	Latch	   *latch;			/* the worker's, if one runs */
	bool		need_worker;	/* none runs and none may be held off */
	bool		wake;			/* the queue was empty, or a batch is full */
} AwReservation;

/* A walk over a queue's published entries, oldest first. */
typedef struct AwQueueIter
{
	AwQueue    *queue;
	uint64		pos;			/* ring position after what was returned */
	uint64		head;			/* where the walk ends */
	uint64		write_id;		/* id of the entry returned last */
} AwQueueIter;

/* Condition variables of a queue, broadcast by queue.c only. */
typedef enum AwQueueCV
{
	AW_CV_APPLIED,				/* applied_write_id or sweeps_done advanced */
	AW_CV_SPACE,				/* tail advanced */
	AW_CV_WORKER				/* a worker started or exited, or recovery
								 * ended */
} AwQueueCV;

/* queue.c: shared memory and binding */
extern Size aw_queue_shmem_size(void);
extern void aw_queue_shmem_init(void);
extern bool aw_queue_loaded(void);
extern void aw_check_available(void);
extern uint64 aw_queue_capacity(void);
extern int	aw_queue_count(void);
extern AwQueue *aw_queue_at(int slot);
extern int	aw_queue_slot(AwQueue *q);
extern AwQueue *aw_queue_lookup(Oid dboid);
extern AwQueue *aw_queue_bind(Oid dboid, AwQueue **idle, bool missing_ok);
extern AwQueue *aw_queue_take_over(AwQueue *q, Oid dboid);
extern void aw_queue_release_hold(AwQueue *q);
extern uint64 aw_queue_forget(AwQueue *q, Oid dboid);

/* queue.c: reading */
extern void aw_queue_read_state(AwQueue *q, AwQueueState *s);
extern uint64 aw_queue_last_write_id(AwQueue *q);
extern uint64 aw_queue_applied_write_id(AwQueue *q);
extern TimestampTz aw_queue_oldest_enqueued_at(AwQueue *q);
extern bool aw_queue_has_writes_for(AwQueue *q, List *relids);
extern ConditionVariable *aw_queue_cv(AwQueue *q, AwQueueCV which);

/* queue.c: producers */
extern AwReserveResult aw_queue_reserve(AwQueue *q, Size len, int nentries,
										AwReservation *r);
extern void aw_queue_publish(AwEntryHeader *entry, uint8 state);
extern void aw_queue_reservation_done(void);
extern void aw_queue_note_urgent(AwQueue *q, uint64 write_id);
extern bool aw_queue_urgent_pending(AwQueue *q);
extern pid_t aw_queue_head_holder(AwQueue *q);

/* queue.c: the queue's worker */
extern void aw_queue_iter_begin(AwQueue *q, AwQueueIter *it);
extern AwEntryHeader *aw_queue_iter_next(AwQueueIter *it);
extern void aw_queue_batch_begin(AwQueue *q, uint64 end_pos, uint64 last_id);
extern void aw_queue_batch_count(AwQueue *q, uint64 napplied, uint64 nfailed,
								 bool new_batch);
extern void aw_queue_batch_end(AwQueue *q);
extern void aw_queue_consume(AwQueue *q, uint64 new_tail, uint64 last_id);
extern uint64 aw_queue_discard(AwQueue *q);

/* queue.c: workers and control flags */
extern bool aw_queue_start_launch(AwQueue *q, int retry_ms, Oid *dboid);
extern bool aw_queue_claim(AwQueue *q, Oid dboid);
extern void aw_queue_release_worker(AwQueue *q);
extern bool aw_queue_release_if_empty(AwQueue *q);
extern bool aw_queue_terminate_worker(AwQueue *q);
extern bool aw_queue_set_hold(AwQueue *q, Oid dboid, bool hold, bool *pending);
extern bool aw_queue_set_paused(AwQueue *q, Oid dboid, bool paused,
								Latch **latch, bool *pending);
extern void aw_queue_set_closed(AwQueue *q, bool closed);
extern void aw_queue_count_waiter(AwQueue *q, int delta);
extern Latch *aw_queue_request_sweep(AwQueue *q);
extern bool aw_queue_sweep_due(AwQueue *q);
extern void aw_queue_sweep_done(AwQueue *q, uint64 requested);

/* queue.c: the save file, in the postmaster */
extern bool aw_queue_iter_begin_stopped(AwQueue *q, AwQueueIter *it,
										Oid *dboid, bool *applying,
										uint64 *in_flight);
extern uint64 aw_queue_id_high_water(void);
extern void aw_queue_raise_id_high_water(uint64 id);
extern void aw_queue_ids_cover(uint64 id);
extern void aw_queue_set_layout_seed(uint64 seed);
extern uint64 aw_queue_layout_seed(void);
extern void aw_queue_restore_bytes(AwQueue *q, uint64 offset,
								   const char *data, Size len);
extern bool aw_queue_restore(AwQueue *q, Oid dboid, uint64 nbytes,
							 uint64 first_id, uint64 next_write_id);
extern void aw_queue_unbind_all(void);

/* queue.c: durable writes (the WAL layer above reads them back) */
extern bool aw_queue_note_recovery(Oid dboid);
extern int	aw_queue_recovery_list(Oid *dboids, int max);
extern void aw_queue_note_failover(void);
extern bool aw_queue_started_in_recovery(void);
extern bool aw_queue_failover_pending(void);
extern void aw_queue_failover_done(const Oid *dboids, int n);
extern bool aw_queue_recovering(AwQueue *q);
extern bool aw_queue_ids_checked(AwQueue *q);
extern uint64 aw_queue_slot_epoch(void);
extern void aw_queue_bump_slot_epoch(void);
extern void aw_queue_note_lost(AwQueue *q, uint64 first, uint64 last);
extern Latch *aw_queue_note_unflushed(XLogRecPtr end, bool *no_launcher);
extern bool aw_queue_unflushed_owed(void);
extern XLogRecPtr aw_queue_take_unflushed(void);
extern void aw_queue_set_launcher_latch(Latch *latch);
extern bool aw_queue_skip_ids(AwQueue *q, Oid dboid, uint64 above);
extern bool aw_queue_recovery_pending(Oid dboid);
extern uint64 aw_queue_startup_ceiling(void);
extern uint64 aw_queue_id_ceiling(void);
extern void aw_queue_iter_begin_recovering(AwQueue *q, AwQueueIter *it);
extern bool aw_queue_rebuild(AwQueue *q, uint64 applied_id, uint64 seen_id, int n,
							 AwEntryHeader **entries, const uint64 *ids,
							 uint64 recovered);
extern bool aw_queue_sample(AwQueue *q, Oid dboid, XLogRecPtr *lsn,
							uint64 *next_id, bool *empty);
extern void aw_queue_recovery_forget(Oid dboid);
extern bool aw_queue_sample_unbound(Oid dboid, XLogRecPtr *lsn);

/* queue_file.c */
extern void aw_queue_file_save(int code, Datum arg);
extern void aw_queue_file_load(void);

#endif							/* AW_QUEUE_H */
