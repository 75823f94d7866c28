/*-------------------------------------------------------------------------
 *
 * queue.c
 *		The shared-memory queues: one ring of variable-length entries per
 *		database, filled by any backend and drained in order by the
 *		database's apply worker.  Everything that reads or changes a queue
 *		goes through the functions here.
 *
 * Producers take the queue's LWLock only to reserve space and write ids;
 * they copy the payload outside the lock and then publish the entry by
 * setting its state after a write barrier.  The worker consumes published
 * entries strictly in ring order (aw_queue_iter_next), so write ids are
 * applied in order.
 *
 * Write ids are never given out twice, also across a crash (which resets
 * shared memory): every id handed out is at most a ceiling kept on disk
 * (AW_IDS_FILE), raised a million ids ahead when reached, as a sequence
 * logs values ahead; a new server run starts its ids above it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "queue.h"

/*
 * One queue per database, bound to it on first use.
 *
 * Lock order: AwControl->lock before any queue's lock; never two queue
 * locks at once.
 *
 * Who writes what:
 *	- dboid: under the queue's lock and AwControl->lock, both exclusive
 *	  (binding, unbinding), so a lookup under the shared control lock sees
 *	  a stable binding.
 *	- head, next_write_id, enqueued: producers, under the queue's lock.
 *	- worker_pid, worker_latch, launching, launch_time, paused, hold,
 *	  closed: under the queue's lock, by producers, workers, DDL
 *	  and the control functions.  A worker clears worker_pid under the lock
 *	  before it exits, so a signal sent under the lock to worker_pid reaches
 *	  that worker and no other process.
 *	- tail, applied_write_id, the counters, applying, batch_end,
 *	  batch_last_id: only the queue's worker (or, with no worker, a backend
 *	  discarding the queue), without the lock; a barrier orders the reads
 *	  of released entries before tail moves, so producers never reuse bytes
 *	  the worker still reads.
 *	- flush_waiters, sweeps_*: atomics, by any backend.
 *	- recovering, recovered: under the lock; set when the slot is bound to
 *	  a database with durable writes to recover, cleared by its worker once
 *	  it has rebuilt the ring from the WAL (aw_queue_rebuild).
 *	- lost, nlost_ranges, lost_ranges: under the lock, by the worker as it
 *	  recovers (aw_queue_note_lost).
 *
 * The lock is an LWLock, not a spinlock: with many producers on few cores
 * a preempted holder makes spinlock waiters back off for milliseconds,
 * while LWLock waiters sleep and are woken at release.
 */
struct AwQueue
{
	LWLock		lock;			/* short sections only; see above */
	Oid			dboid;			/* InvalidOid: slot free */
	bool		paused;
	bool		launching;		/* a worker was requested, not yet running */
	bool		hold;			/* database DDL in progress: no worker */
	bool		closed;			/* the database allows no connections */
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
	pg_atomic_uint64 sweeps_done;	/* requests whose writes are applied */
	pg_atomic_uint64 sweep_after_id;	/* last write id at the newest request */
	pg_atomic_uint64 urgent_write_id;	/* highest id published as urgent: the
										 * worker applies up to it now */
	bool		recovering;		/* its durable writes are being read back from
								 * the WAL: no reservation until done (under
								 * the lock) */
	uint64		recovered;		/* writes read back at the last recovery */
	uint64		lost;			/* writes found lost since the server started */
	int			nlost_ranges;	/* their newest ranges, oldest first */
	uint64		lost_ranges[AW_LOST_RANGES][2];
	uint64		recover_base;	/* while recovering: the id before the ring's
								 * first entry (a restored queue) */
	bool		ids_checked;	/* ids are above the database's applied mark
								 * (aw_queue_skip_ids; under the lock) */

	ConditionVariable applied_cv;	/* applied_write_id advanced */
	ConditionVariable space_cv; /* tail advanced */
	ConditionVariable worker_cv;	/* worker started or exited */
};

/* Databases with durable writes to recover that a server run tracks. */
#define AW_MAX_RECOVER 1024

/* The shared state: the queues, then their rings. */
typedef struct AwControl
{
	LWLock	   *lock;			/* guards binding (dboid), id_high_water */
	int			queue_tranche;	/* tranche of the queues' locks */
	int			max_databases;
	uint64		capacity;		/* ring bytes per queue */
	uint64		id_high_water;	/* highest id of any unbound queue */
	uint64		layout_seed;	/* aw_layout_seed: set at creation, or from a
								 * loaded save file, in the postmaster */
	pg_atomic_uint64 id_ceiling;	/* no id handed out is above it, and it is
									 * on disk: read under a queue's lock,
									 * raised under AwControl->lock */
	uint64		startup_ceiling;	/* the ceiling on disk at startup: every
									 * id of an earlier server run is at most
									 * it */
	pg_atomic_uint64 slot_epoch;	/* bumped when asyncwrite drops a slot */
	pg_atomic_uint64 unflushed_lsn; /* end of the newest message logged with
									 * synchronous_commit off outside a commit
									 * record (raised with a CAS) */
	pg_atomic_uint32 unflushed_owed;	/* 1 from the first such message after
										 * the launcher last had the WAL
										 * writer flush them, to then */
	Latch	   *launcher_latch; /* set by the launcher as it starts */
	bool		started_in_recovery;	/* as a standby or a restored backup:
										 * its recoveries may find the WAL of
										 * their old writes gone (set at
										 * startup) */
	bool		failover_pending;	/* started as a standby: until the
									 * launcher has looked for durable writes
									 * in the WAL after promotion, every
									 * database recovers (under lock) */
	int			nrecover;		/* databases whose durable writes are still */
	Oid			recover[AW_MAX_RECOVER];	/* to be read back from the WAL
											 * (under lock) */
	AwQueue		queues[FLEXIBLE_ARRAY_MEMBER];
} AwControl;

/*
 * Who holds a reservation not yet published, one slot per backend (by
 * backend id), written only by that backend: the ring position of its
 * first reserved entry plus one (0: none), its queue and pid.  Read without
 * a lock, by the stats only, to name the backend whose committing
 * transaction holds a queue's head.
 */
typedef struct AwHolder
{
	pg_atomic_uint64 pos_plus1;
	int			slot;
	pid_t		pid;
} AwHolder;

static AwControl *aw_control = NULL;
static char *aw_rings = NULL;
static AwHolder *aw_holders = NULL;

/* Ring bytes a producer maps into its address space at a time. */
#define AW_MAP_CHUNK (256 * 1024)

/* Size of the control struct, rounded so that the rings start aligned. */
static Size
aw_control_size(int max_databases)
{
	return MAXALIGN(add_size(offsetof(AwControl, queues),
							 mul_size(sizeof(AwQueue), max_databases)));
}

/* Bytes of one ring, as configured by asyncwrite.queue_size. */
static uint64
aw_ring_capacity(void)
{
	return (uint64) MAXALIGN_DOWN((uint64) aw_queue_size_kb * 1024);
}

/* Shared memory needed for the control struct and every ring. */
Size
aw_queue_shmem_size(void)
{
	return add_size(add_size(aw_control_size(aw_max_databases),
							 mul_size(aw_ring_capacity(), aw_max_databases)),
					mul_size(sizeof(AwHolder), MaxBackends));
}

/* Start of a queue's ring. */
static char *
aw_queue_ring(AwQueue *q)
{
	return aw_rings + (q - aw_control->queues) * aw_control->capacity;
}

/* Reset a queue slot to an empty, unbound state whose ids follow last_id. */
static void
aw_queue_reset(AwQueue *q, uint64 last_id)
{
	q->dboid = InvalidOid;
	q->paused = false;
	q->launching = false;
	q->hold = false;
	q->closed = false;
	q->worker_pid = 0;
	q->worker_latch = NULL;
	q->launch_time = 0;
	q->head = 0;
	q->next_write_id = last_id + 1;
	q->enqueued = 0;
	pg_atomic_write_u64(&q->tail, 0);
	pg_atomic_write_u64(&q->applied_write_id, last_id);
	pg_atomic_write_u64(&q->applied, 0);
	pg_atomic_write_u64(&q->failed, 0);
	pg_atomic_write_u64(&q->batches, 0);
	pg_atomic_write_u64(&q->last_applied_at, 0);
	pg_atomic_write_u32(&q->applying, 0);
	pg_atomic_write_u64(&q->sweeps_requested, 0);
	pg_atomic_write_u64(&q->sweeps_done, 0);
	pg_atomic_write_u64(&q->sweep_after_id, 0);
	q->recovering = false;
	q->recovered = 0;
	q->lost = 0;
	q->nlost_ranges = 0;
	q->ids_checked = false;
}

/* The file of the write id ceiling, and ids taken ahead when it is raised. */
#define AW_IDS_FILE		"asyncwrite.ids"
#define AW_IDS_TMP		"asyncwrite.ids.tmp"
#define AW_IDS_AHEAD	1000000

/*
 * The write id ceiling on disk, 0 if none: every id an earlier server run
 * handed out is at most this.  The file also keeps the layout seed, so that
 * rows read back from the WAL after a crash keep their fingerprints; *seed
 * is 0 if the file has none (written by an earlier asyncwrite).  Read in
 * the postmaster when shared memory is set up (also after a crash).
 */
static uint64
aw_ids_file_read(uint64 *seed)
{
	FILE	   *f = AllocateFile(AW_IDS_FILE, PG_BINARY_R);
	uint64		ceiling = 0;

	*seed = 0;
	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(FATAL,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", AW_IDS_FILE),
					 errdetail("asyncwrite cannot tell which write ids were given out before.")));
		return 0;
	}
	if (fread(&ceiling, sizeof(ceiling), 1, f) != 1)
		ereport(FATAL,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("file \"%s\" is truncated", AW_IDS_FILE),
				 errhint("If the server crashed while writing it, remove it; write ids given out since the last clean start may then be given out again.")));
	if (fread(seed, sizeof(*seed), 1, f) != 1)
		*seed = 0;
	FreeFile(f);
	return ceiling;
}

/*
 * Write the ceiling and the layout seed to the ids file, durably.  Returns
 * false with errno set on failure.
 */
static bool
aw_ids_file_write(uint64 ceiling, uint64 seed)
{
	FILE	   *f = AllocateFile(AW_IDS_TMP, PG_BINARY_W);

	if (f == NULL ||
		fwrite(&ceiling, sizeof(ceiling), 1, f) != 1 ||
		fwrite(&seed, sizeof(seed), 1, f) != 1 ||
		pg_fsync(fileno(f)) != 0)
	{
		int			save_errno = errno;

		if (f != NULL)
			FreeFile(f);
		errno = save_errno;
		return false;
	}
	if (FreeFile(f) != 0)
		return false;
	return durable_rename(AW_IDS_TMP, AW_IDS_FILE, LOG) == 0;
}

/*
 * Make sure ids up to needed may be handed out: raise the ceiling on disk
 * (durably, before any such id is given out) AW_IDS_AHEAD past it.  A
 * producer about to take ids, or the postmaster after loading a save file
 * whose ids an earlier run handed out.  Lock order: takes AwControl->lock,
 * so the caller holds no queue lock.
 */
void
aw_queue_ids_cover(uint64 needed)
{
	LWLockAcquire(aw_control->lock, LW_EXCLUSIVE);
	if (needed > pg_atomic_read_u64(&aw_control->id_ceiling))
	{
		uint64		ceiling = needed + AW_IDS_AHEAD;

		if (!aw_ids_file_write(ceiling, aw_control->layout_seed))
		{
			int			save_errno = errno;

			LWLockRelease(aw_control->lock);
			errno = save_errno;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write file \"%s\": %m", AW_IDS_FILE)));
		}
		pg_atomic_write_u64(&aw_control->id_ceiling, ceiling);
	}
	LWLockRelease(aw_control->lock);
}

/* Create or attach to the shared state; called from shmem_startup_hook. */
void
aw_queue_shmem_init(void)
{
	bool		found;
	int			i;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	aw_control = ShmemInitStruct("asyncwrite", aw_queue_shmem_size(), &found);
	aw_rings = (char *) aw_control + aw_control_size(aw_max_databases);
	aw_holders = (AwHolder *) (aw_rings + aw_ring_capacity() * aw_max_databases);
	if (!found)
	{
		aw_control->lock = &(GetNamedLWLockTranche("asyncwrite"))->lock;
		aw_control->queue_tranche = LWLockNewTrancheId();
		aw_control->max_databases = aw_max_databases;
		aw_control->capacity = aw_ring_capacity();
		aw_control->id_high_water = aw_ids_file_read(&aw_control->layout_seed);
		aw_control->startup_ceiling = aw_control->id_high_water;
		aw_control->nrecover = 0;
		aw_control->failover_pending = false;
		aw_control->started_in_recovery = false;
		pg_atomic_init_u64(&aw_control->slot_epoch, 0);
		pg_atomic_init_u64(&aw_control->unflushed_lsn, 0);
		pg_atomic_init_u32(&aw_control->unflushed_owed, 0);
		aw_control->launcher_latch = NULL;
		pg_atomic_init_u64(&aw_control->id_ceiling, aw_control->id_high_water);
		if (aw_control->layout_seed == 0)
		{
			/* A new seed, on disk before any row is fingerprinted with it. */
			if (!pg_strong_random(&aw_control->layout_seed, sizeof(uint64)))
				ereport(FATAL,
						(errmsg("could not generate a random number for asyncwrite")));
			if (!aw_ids_file_write(aw_control->id_high_water,
								   aw_control->layout_seed))
				ereport(FATAL,
						(errcode_for_file_access(),
						 errmsg("could not write file \"%s\": %m", AW_IDS_FILE)));
		}
		for (i = 0; i < aw_max_databases; i++)
		{
			AwQueue    *q = &aw_control->queues[i];

			LWLockInitialize(&q->lock, aw_control->queue_tranche);
			pg_atomic_init_u64(&q->tail, 0);
			pg_atomic_init_u64(&q->applied_write_id, 0);
			pg_atomic_init_u64(&q->applied, 0);
			pg_atomic_init_u64(&q->failed, 0);
			pg_atomic_init_u64(&q->batches, 0);
			pg_atomic_init_u64(&q->last_applied_at, 0);
			pg_atomic_init_u32(&q->applying, 0);
			pg_atomic_init_u64(&q->batch_end, 0);
			pg_atomic_init_u64(&q->batch_last_id, 0);
			pg_atomic_init_u32(&q->flush_waiters, 0);
			pg_atomic_init_u64(&q->sweeps_requested, 0);
			pg_atomic_init_u64(&q->sweeps_done, 0);
			pg_atomic_init_u64(&q->sweep_after_id, 0);
			pg_atomic_init_u64(&q->urgent_write_id, 0);
			ConditionVariableInit(&q->applied_cv);
			ConditionVariableInit(&q->space_cv);
			ConditionVariableInit(&q->worker_cv);
			aw_queue_reset(q, 0);
		}

		/*
		 * Allocate every ring page now, in the postmaster, so that no
		 * producer zero-fills a new page.  Each process still maps the pages
		 * it writes: see aw_queue_map_ahead().
		 */
		memset(aw_rings, 0, aw_control->capacity * aw_max_databases);
		for (i = 0; i < MaxBackends; i++)
			pg_atomic_init_u64(&aw_holders[i].pos_plus1, 0);
	}
	aw_layout_seed = aw_control->layout_seed;
	LWLockRelease(AddinShmemInitLock);
	LWLockRegisterTranche(aw_control->queue_tranche, "asyncwrite queue");
}

/* Whether the queues exist: the library was loaded at server start. */
bool
aw_queue_loaded(void)
{
	return aw_control != NULL;
}

/* Raise an error unless the library was loaded at server start. */
void
aw_check_available(void)
{
	if (aw_control == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("asyncwrite is not loaded"),
				 errdetail("The asyncwrite queues live in shared memory set up at server start."),
				 errhint("Add asyncwrite to shared_preload_libraries and restart the server.")));
}

/* Ring bytes of each queue. */
uint64
aw_queue_capacity(void)
{
	return aw_control->capacity;
}

/* Number of queue slots (asyncwrite.max_databases at server start). */
int
aw_queue_count(void)
{
	return aw_control ? aw_control->max_databases : 0;
}

/* The queue in a slot, or NULL for a slot that does not exist. */
AwQueue *
aw_queue_at(int slot)
{
	if (aw_control == NULL || slot < 0 || slot >= aw_control->max_databases)
		return NULL;
	return &aw_control->queues[slot];
}

/* The slot number of a queue. */
int
aw_queue_slot(AwQueue *q)
{
	return (int) (q - aw_control->queues);
}

/* The queue bound to a database, or NULL when it has none. */
AwQueue *
aw_queue_lookup(Oid dboid)
{
	AwQueue    *result = NULL;
	int			i;

	aw_check_available();
	LWLockAcquire(aw_control->lock, LW_SHARED);
	for (i = 0; i < aw_control->max_databases; i++)
	{
		if (aw_control->queues[i].dboid == dboid)
		{
			result = &aw_control->queues[i];
			break;
		}
	}
	LWLockRelease(aw_control->lock);
	return result;
}

/*
 * Whether a bound slot holds nothing worth keeping: no write queued, none
 * being reserved, not paused, nobody waiting, no worker running or being
 * started, and (unless we hold it ourselves, held_by_us) no database DDL.
 * The caller holds the slot's lock.
 */
static bool
aw_queue_evictable(AwQueue *q, bool held_by_us)
{
	return q->head == pg_atomic_read_u64(&q->tail) && !q->recovering &&
		pg_atomic_read_u64(&q->sweeps_requested) ==
		pg_atomic_read_u64(&q->sweeps_done) &&
		q->worker_pid == 0 && !q->launching && !q->paused &&
		q->hold == held_by_us &&
		pg_atomic_read_u32(&q->flush_waiters) == 0;
}

/*
 * Whether a bound slot would be evictable but for its idle worker.  The
 * caller holds the slot's lock.
 */
static bool
aw_queue_idle_worker(AwQueue *q)
{
	return q->head == pg_atomic_read_u64(&q->tail) && !q->recovering &&
		pg_atomic_read_u64(&q->sweeps_requested) ==
		pg_atomic_read_u64(&q->sweeps_done) &&
		q->worker_pid != 0 && !q->paused && !q->hold &&
		pg_atomic_read_u32(&q->flush_waiters) == 0;
}

/*
 * Whether dboid still has durable writes to read back from the WAL in this
 * server run.  The caller holds AwControl->lock.
 */
static bool
aw_queue_must_recover(Oid dboid)
{
	if (aw_control->failover_pending)
		return true;
	for (int i = 0; i < aw_control->nrecover; i++)
		if (aw_control->recover[i] == dboid)
			return true;
	return false;
}

/*
 * A queue just bound to a database that must recover: no write id is given
 * out, and nothing counts as applied, until its worker has read the
 * database's durable writes back (aw_queue_rebuild).  The caller holds
 * AwControl->lock (and, unless in the postmaster, the queue's lock).
 */
static void
aw_queue_mark_recovering(AwQueue *q)
{
	if (!aw_queue_must_recover(q->dboid))
		return;
	q->recovering = true;
	q->recover_base = pg_atomic_read_u64(&q->applied_write_id);
	pg_atomic_write_u64(&q->applied_write_id, 0);
}

/*
 * Bind a slot to dboid.  Lock order: the caller holds AwControl->lock
 * exclusively, we take the slot's lock.  Ids of the new binding start
 * above every id an unbound slot ever gave out.
 */
static void
aw_queue_bind_slot(AwQueue *q, Oid dboid)
{
	if (q->next_write_id - 1 > aw_control->id_high_water)
		aw_control->id_high_water = q->next_write_id - 1;
	aw_queue_reset(q, aw_control->id_high_water);
	q->dboid = dboid;
	aw_queue_mark_recovering(q);
}

/*
 * The queue of a database, binding a slot to it if it has none: a free
 * slot, or one whose database has nothing queued and no worker; that is
 * checked and the slot reset under one hold of its lock, so no producer of
 * the old database can reserve in between.  When no slot can be taken but
 * one only has an idle worker, returns NULL with *idle set to that slot,
 * now held (no worker may start there) for aw_queue_take_over() once its
 * worker is gone.  With idle NULL, or when there is none, raises an error,
 * or with missing_ok returns NULL.
 */
AwQueue *
aw_queue_bind(Oid dboid, AwQueue **idle, bool missing_ok)
{
	AwQueue    *q = aw_queue_lookup(dboid);
	AwQueue    *candidate = NULL;
	int			i;

	if (q != NULL)
		return q;

	LWLockAcquire(aw_control->lock, LW_EXCLUSIVE);
	for (i = 0; i < aw_control->max_databases; i++)
	{
		if (aw_control->queues[i].dboid == dboid)
		{
			LWLockRelease(aw_control->lock);
			return &aw_control->queues[i];
		}
	}
	/* A free slot first, else one whose database has nothing queued. */
	for (i = 0; i < aw_control->max_databases; i++)
	{
		AwQueue    *c = &aw_control->queues[i];

		if (c->dboid != InvalidOid)
			continue;
		LWLockAcquire(&c->lock, LW_EXCLUSIVE);
		aw_queue_bind_slot(c, dboid);
		LWLockRelease(&c->lock);
		LWLockRelease(aw_control->lock);
		return c;
	}
	for (i = 0; i < aw_control->max_databases; i++)
	{
		AwQueue    *c = &aw_control->queues[i];

		LWLockAcquire(&c->lock, LW_EXCLUSIVE);
		if (aw_queue_evictable(c, false))
		{
			aw_queue_bind_slot(c, dboid);
			LWLockRelease(&c->lock);
			LWLockRelease(aw_control->lock);
			return c;
		}
		if (candidate == NULL && idle != NULL && aw_queue_idle_worker(c))
		{
			c->hold = true;
			candidate = c;
		}
		LWLockRelease(&c->lock);
	}
	LWLockRelease(aw_control->lock);
	if (candidate != NULL)
	{
		*idle = candidate;
		return NULL;
	}
	if (missing_ok)
		return NULL;
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("no asyncwrite queue is free for this database"),
			 errdetail("All %d queues are in use by databases with queued or paused writes.",
					   aw_control->max_databases),
			 errhint("Increase asyncwrite.max_databases and restart the server.")));
	return NULL;				/* keep compiler quiet */
}

/* Release a hold this backend set (an eviction or DDL that failed). */
void
aw_queue_release_hold(AwQueue *q)
{
	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	q->hold = false;
	LWLockRelease(&q->lock);
}

/*
 * Take over a slot aw_queue_bind() held for us, once its idle worker is
 * gone: bind it to dboid if it still holds nothing worth keeping.  Else
 * (a write arrived, or the worker did not exit) release the hold and
 * return NULL.
 */
AwQueue *
aw_queue_take_over(AwQueue *q, Oid dboid)
{
	bool		taken;

	LWLockAcquire(aw_control->lock, LW_EXCLUSIVE);
	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	taken = q->dboid != InvalidOid && q->hold && aw_queue_evictable(q, true);
	if (taken)
		aw_queue_bind_slot(q, dboid);
	else
		q->hold = false;
	LWLockRelease(&q->lock);
	LWLockRelease(aw_control->lock);
	return taken ? q : NULL;
}

/*
 * Unbind a dropped database's queue, if it is still bound to it, and return
 * how many writes it still held: they can no longer be applied.  Its ids
 * are never given out again.
 */
uint64
aw_queue_forget(AwQueue *q, Oid dboid)
{
	uint64		lost;

	LWLockAcquire(aw_control->lock, LW_EXCLUSIVE);
	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	if (q->dboid != dboid)
	{
		LWLockRelease(&q->lock);
		LWLockRelease(aw_control->lock);
		return 0;
	}
	lost = q->next_write_id - 1 - pg_atomic_read_u64(&q->applied_write_id);
	if (q->next_write_id - 1 > aw_control->id_high_water)
		aw_control->id_high_water = q->next_write_id - 1;
	q->dboid = InvalidOid;
	q->hold = false;
	q->paused = false;
	q->recovering = false;
	q->head = 0;
	pg_atomic_write_u64(&q->tail, 0);
	pg_atomic_write_u64(&q->applied_write_id, q->next_write_id - 1);
	LWLockRelease(&q->lock);
	LWLockRelease(aw_control->lock);
	aw_queue_recovery_forget(dboid);
	ConditionVariableBroadcast(&q->applied_cv);
	ConditionVariableBroadcast(&q->space_cv);
	ConditionVariableBroadcast(&q->worker_cv);
	return lost;
}

/* Copy a queue's state under its lock. */
void
aw_queue_read_state(AwQueue *q, AwQueueState *s)
{
	LWLockAcquire(&q->lock, LW_SHARED);
	s->dboid = q->dboid;
	s->paused = q->paused;
	s->hold = q->hold;
	s->closed = q->closed;
	s->worker_pid = q->worker_pid;
	s->worker_latch = q->worker_latch;
	s->head = q->head;
	s->last_write_id = q->next_write_id - 1;
	s->enqueued = q->enqueued;
	s->recovering = q->recovering;
	s->recovered = q->recovered;
	s->lost = q->lost;
	s->nlost_ranges = q->nlost_ranges;
	memcpy(s->lost_ranges, q->lost_ranges, sizeof(q->lost_ranges));
	LWLockRelease(&q->lock);
	s->applying = pg_atomic_read_u32(&q->applying) != 0;
	s->tail = pg_atomic_read_u64(&q->tail);
	s->applied_write_id = pg_atomic_read_u64(&q->applied_write_id);
	s->applied = pg_atomic_read_u64(&q->applied);
	s->failed = pg_atomic_read_u64(&q->failed);
	s->batches = pg_atomic_read_u64(&q->batches);
	s->last_applied_at = (TimestampTz) pg_atomic_read_u64(&q->last_applied_at);
	s->sweeps_requested = pg_atomic_read_u64(&q->sweeps_requested);
	s->sweeps_done = pg_atomic_read_u64(&q->sweeps_done);
	s->flush_waiters = pg_atomic_read_u32(&q->flush_waiters);
	s->urgent_write_id = pg_atomic_read_u64(&q->urgent_write_id);
}

/*
 * Whether an urgent write waits to be applied: then every publication
 * wakes the worker, which may be waiting for an entry ahead of it.
 */
bool
aw_queue_urgent_pending(AwQueue *q)
{
	return pg_atomic_read_u64(&q->urgent_write_id) >
		pg_atomic_read_u64(&q->applied_write_id);
}

/*
 * An urgent write was published with this id: the worker applies every
 * write up to it at once.  Only ever raised (write ids of every binding
 * rise), without the lock; the compare-and-exchange is a full barrier, so
 * a worker woken after it sees it.
 */
void
aw_queue_note_urgent(AwQueue *q, uint64 write_id)
{
	uint64		old = pg_atomic_read_u64(&q->urgent_write_id);

	while (old < write_id &&
		   !pg_atomic_compare_exchange_u64(&q->urgent_write_id, &old, write_id))
		;
}

/* Highest write id handed out by a queue so far. */
uint64
aw_queue_last_write_id(AwQueue *q)
{
	uint64		id;

	LWLockAcquire(&q->lock, LW_SHARED);
	id = q->next_write_id - 1;
	LWLockRelease(&q->lock);
	return id;
}

/* The queue's applied mark: every write id up to it is done. */
uint64
aw_queue_applied_write_id(AwQueue *q)
{
	return pg_atomic_read_u64(&q->applied_write_id);
}

/* One of a queue's condition variables, to sleep on. */
ConditionVariable *
aw_queue_cv(AwQueue *q, AwQueueCV which)
{
	switch (which)
	{
		case AW_CV_APPLIED:
			return &q->applied_cv;
		case AW_CV_SPACE:
			return &q->space_cv;
		case AW_CV_WORKER:
			break;
	}
	return &q->worker_cv;
}

/*
 * Map into this backend the ring pages a reservation is about to write,
 * before taking the lock.  Shared memory pages are not mapped in a child
 * process until it touches them, and a page fault taken while holding the
 * queue lock (the reserved entry's header is written under it) stalls every
 * other producer; on a VM it costs microseconds.  One chunk at a time, a
 * bit per chunk remembers what is mapped.  head is read without the lock:
 * it is only a hint of where the next reservation lands.
 */
static void
aw_queue_map_ahead(AwQueue *q, Size len)
{
#ifdef MADV_POPULATE_WRITE
	static AwQueue *mapped_queue = NULL;
	static uint8 *mapped = NULL;
	uint64		capacity = aw_control->capacity;
	uint64		nchunks = (capacity + AW_MAP_CHUNK - 1) / AW_MAP_CHUNK;
	uint64		pos = (*(volatile uint64 *) &q->head) % capacity;
	uint64		first = pos / AW_MAP_CHUNK;
	uint64		last = (pos + len + AW_MAP_CHUNK / 2) / AW_MAP_CHUNK;

	if (mapped_queue != q)
	{
		if (mapped == NULL)
			mapped = MemoryContextAllocZero(TopMemoryContext, nchunks / 8 + 1);
		else
			memset(mapped, 0, nchunks / 8 + 1);
		mapped_queue = q;
	}
	for (uint64 c = first; c <= last; c++)
	{
		uint64		chunk = c % nchunks;
		char	   *start;

		if (mapped[chunk / 8] & (1 << (chunk % 8)))
			continue;
		start = aw_queue_ring(q) + chunk * AW_MAP_CHUNK;
		/* Failure (an older kernel) only means faults stay where they were. */
		(void) madvise((void *) TYPEALIGN_DOWN(sysconf(_SC_PAGESIZE), (uintptr_t) start),
					   Min(AW_MAP_CHUNK, capacity - chunk * AW_MAP_CHUNK),
					   MADV_POPULATE_WRITE);
		mapped[chunk / 8] |= 1 << (chunk % 8);
	}
#endif
}

/*
 * Reserve one contiguous block of len bytes (never wrapping) for nentries
 * entries of this backend's database and take their consecutive write ids.
 * Only the first entry is marked reserved here: the worker cannot pass it,
 * so the caller marks the others before publishing the first.  Returns
 * AW_RESERVE_FULL when the block does not fit now, AW_RESERVE_REBOUND when
 * the slot was given to another database since the caller looked it up.
 * *r receives the reservation and what the caller needs to wake or start
 * the worker (also when full).
 */
AwReserveResult
aw_queue_reserve(AwQueue *q, Size len, int nentries, AwReservation *r)
{
	uint64		capacity = aw_control->capacity;
	uint64		tail;
	uint64		room_to_end;
	uint64		pad;
	uint64		pending;

	aw_queue_map_ahead(q, len);
	for (;;)
	{
		uint64		needed;

		LWLockAcquire(&q->lock, LW_EXCLUSIVE);
		if (q->dboid != MyDatabaseId)
		{
			LWLockRelease(&q->lock);
			return AW_RESERVE_REBOUND;
		}
		if (q->recovering)
		{
			r->queue = q;
			r->latch = q->worker_latch;
			r->need_worker = (q->worker_pid == 0 && !q->hold);
			LWLockRelease(&q->lock);
			return AW_RESERVE_RECOVERING;
		}
		needed = q->next_write_id + nentries - 1;
		if (needed <= pg_atomic_read_u64(&aw_control->id_ceiling))
			break;
		/* Lock order: the control lock is never taken under a queue's. */
		LWLockRelease(&q->lock);
		aw_queue_ids_cover(needed);
	}

	r->queue = q;
	r->latch = q->worker_latch;
	r->need_worker = (q->worker_pid == 0 && !q->hold);
	tail = pg_atomic_read_u64(&q->tail);
	room_to_end = capacity - q->head % capacity;
	pad = (room_to_end < len) ? room_to_end : 0;

	/*
	 * One header's room stays free: a ring refilled from the WAL after a
	 * crash needs a gap entry after its entries (aw_queue_rebuild).
	 */
	if (q->head + pad + len - tail > capacity - sizeof(AwEntryHeader))
	{
		LWLockRelease(&q->lock);
		return AW_RESERVE_FULL;
	}

	if (pad >= sizeof(AwEntryHeader))
	{
		/* Filler entry so the worker skips to the ring's start. */
		AwEntryHeader *filler = (AwEntryHeader *) (aw_queue_ring(q) + q->head % capacity);

		memset(filler, 0, sizeof(AwEntryHeader));
		filler->length = (uint32) pad;
		filler->kind = AW_KIND_PAD;
		filler->state = AW_ENTRY_READY;
	}
	r->entry = (AwEntryHeader *) (aw_queue_ring(q) + (q->head + pad) % capacity);
	r->entry->state = AW_ENTRY_RESERVED;
	if (AW_MY_PROC_INDEX >= 0 && AW_MY_PROC_INDEX < MaxBackends)
	{
		AwHolder   *h = &aw_holders[AW_MY_PROC_INDEX];

		h->slot = aw_queue_slot(q);
		h->pid = MyProcPid;
		pg_atomic_write_u64(&h->pos_plus1, q->head + pad + 1);
	}
	q->head += pad + len;
	r->first_id = q->next_write_id;
	q->next_write_id += nentries;
	q->enqueued += nentries;
	pending = q->next_write_id - 1 - pg_atomic_read_u64(&q->applied_write_id);
	r->wake = (pending == (uint64) nentries || pending >= (uint64) aw_batch_size);
	LWLockRelease(&q->lock);
	return AW_RESERVE_OK;
}

/*
 * Publish a prepared entry as ready (or as skipped, when its transaction
 * aborted).  The write barrier makes the copied bytes visible before the
 * state that the worker reads first.  Never raises an error, so it may run
 * at commit.
 */
void
aw_queue_publish(AwEntryHeader *entry, uint8 state)
{
	pg_write_barrier();
	entry->state = state;
}

/* This backend has published (or skipped) all it reserved. */
void
aw_queue_reservation_done(void)
{
	if (AW_MY_PROC_INDEX >= 0 && AW_MY_PROC_INDEX < MaxBackends)
		pg_atomic_write_u64(&aw_holders[AW_MY_PROC_INDEX].pos_plus1, 0);
}

/*
 * The pid of the backend holding the queue's oldest entry unpublished (its
 * transaction is committing), or 0 when the oldest entry is published.
 */
pid_t
aw_queue_head_holder(AwQueue *q)
{
	uint64		capacity = aw_control->capacity;
	uint64		pos = pg_atomic_read_u64(&q->tail);
	AwEntryHeader *hdr;
	AwQueueState s;

	aw_queue_read_state(q, &s);
	if (s.head == pos)
		return 0;
	if (capacity - pos % capacity < sizeof(AwEntryHeader))
		pos += capacity - pos % capacity;	/* an implicit filler */
	hdr = (AwEntryHeader *) (aw_queue_ring(q) + pos % capacity);
	if (pos >= s.head || hdr->state != AW_ENTRY_RESERVED)
		return 0;
	for (int i = 0; i < MaxBackends; i++)
	{
		AwHolder   *h = &aw_holders[i];

		if (pg_atomic_read_u64(&h->pos_plus1) == pos + 1 &&
			h->slot == aw_queue_slot(q))
			return h->pid;
	}
	return 0;
}

/* Begin a walk over a queue's published entries from its tail. */
void
aw_queue_iter_begin(AwQueue *q, AwQueueIter *it)
{
	it->queue = q;
	/* Tail first: read after head, it could have passed it. */
	it->pos = pg_atomic_read_u64(&q->tail);
	it->write_id = pg_atomic_read_u64(&q->applied_write_id);
	LWLockAcquire(&q->lock, LW_SHARED);
	it->head = q->head;
	LWLockRelease(&q->lock);
}

/*
 * In the postmaster at exit, when no other process runs (locks a killed
 * process held are never released): begin a walk over what a bound queue
 * still holds, after the batch its worker was applying when it was stopped
 * (that batch's transaction may have committed).  Returns false for an
 * unbound or empty slot; *dboid receives the database, *applying whether a
 * batch was in flight and *in_flight how many writes of it are left out.
 */
bool
aw_queue_iter_begin_stopped(AwQueue *q, AwQueueIter *it, Oid *dboid,
							bool *applying, uint64 *in_flight)
{
	if (q->dboid == InvalidOid || q->head == pg_atomic_read_u64(&q->tail))
		return false;
	*dboid = q->dboid;
	it->queue = q;
	it->head = q->head;
	it->pos = pg_atomic_read_u64(&q->tail);
	/* A queue stopped before its recovery ended keeps its restored base. */
	it->write_id = q->recovering ? q->recover_base :
		pg_atomic_read_u64(&q->applied_write_id);
	*in_flight = 0;
	*applying = pg_atomic_read_u32(&q->applying) != 0;
	if (*applying)
	{
		*in_flight = pg_atomic_read_u64(&q->batch_last_id) - it->write_id;
		it->pos = pg_atomic_read_u64(&q->batch_end);
		it->write_id = pg_atomic_read_u64(&q->batch_last_id);
	}
	return true;
}

/*
 * The next published entry of a walk (ready or skipped), its id in
 * it->write_id and it->pos just past it; padding is passed over.  NULL at
 * the walk's end, or at an entry still reserved (a producer is copying it,
 * or its transaction is committing): nothing after it can be read yet, and
 * it->pos stays there.  An entry whose length or state makes no sense (a
 * ring left by a stop in the middle of a write, or a damaged save file) also
 * ends the walk.
 */
AwEntryHeader *
aw_queue_iter_next(AwQueueIter *it)
{
	uint64		capacity = aw_control->capacity;
	char	   *ring = aw_queue_ring(it->queue);

	while (it->pos < it->head)
	{
		uint64		room_to_end = capacity - it->pos % capacity;
		AwEntryHeader *hdr;

		/* Less than a header before the ring's end: an implicit filler. */
		if (room_to_end < sizeof(AwEntryHeader))
		{
			it->pos += room_to_end;
			continue;
		}
		hdr = (AwEntryHeader *) (ring + it->pos % capacity);
		if (hdr->state != AW_ENTRY_READY && hdr->state != AW_ENTRY_SKIPPED)
			break;
		/* Read the entry only after seeing it published. */
		pg_read_barrier();
		if (hdr->length < sizeof(AwEntryHeader) ||
			hdr->length != MAXALIGN(hdr->length) ||
			it->pos + hdr->length > it->head)
			break;
		it->pos += hdr->length;
		if (hdr->kind != AW_KIND_PAD)
		{
			it->write_id += aw_entry_ids(hdr);
			return hdr;
		}
	}
	return NULL;
}

/*
 * Mark a batch in flight before applying it: if the worker dies between
 * the batch's commit and its release, the save at shutdown skips it rather
 * than applying it twice.
 */
void
aw_queue_batch_begin(AwQueue *q, uint64 end_pos, uint64 last_id)
{
	pg_atomic_write_u64(&q->batch_end, end_pos);
	pg_atomic_write_u64(&q->batch_last_id, last_id);
	pg_write_barrier();
	pg_atomic_write_u32(&q->applying, 1);
}

/*
 * Count writes of a batch in the queue's statistics (and the batch itself
 * with new_batch), before they are released, so that whoever sees them
 * applied sees them counted.
 */
void
aw_queue_batch_count(AwQueue *q, uint64 napplied, uint64 nfailed,
					 bool new_batch)
{
	pg_atomic_add_fetch_u64(&q->applied, napplied);
	pg_atomic_add_fetch_u64(&q->failed, nfailed);
	if (new_batch)
		pg_atomic_add_fetch_u64(&q->batches, 1);
	pg_atomic_write_u64(&q->last_applied_at, (uint64) GetCurrentTimestamp());
}

/* No batch is in flight any more: it was released or rolled back. */
void
aw_queue_batch_end(AwQueue *q)
{
	pg_atomic_write_u32(&q->applying, 0);
}

/*
 * Release every entry below new_tail, whose ids go up to last_id, once their
 * batch is committed.  The barrier orders the worker's reads of the entries
 * before producers can see the space as free.
 */
void
aw_queue_consume(AwQueue *q, uint64 new_tail, uint64 last_id)
{
	pg_memory_barrier();
	pg_atomic_write_u64(&q->tail, new_tail);
	pg_atomic_write_u64(&q->applied_write_id, last_id);

	/*
	 * The batch's last release ends it, after the tail moved (the save file
	 * at an immediate stop leaves out a batch still "applying") and before
	 * waiters wake (they see the queue idle).
	 */
	if (pg_atomic_read_u32(&q->applying) &&
		last_id >= pg_atomic_read_u64(&q->batch_last_id))
	{
		pg_write_barrier();
		pg_atomic_write_u32(&q->applying, 0);
	}
	ConditionVariableBroadcast(&q->applied_cv);
	ConditionVariableBroadcast(&q->space_cv);
}

/*
 * Drop the published entries from the tail up to the first one still being
 * written (a committing transaction's), and return how many writes that
 * was.  Only the queue's worker, or a backend when no worker runs, calls
 * this.
 */
uint64
aw_queue_discard(AwQueue *q)
{
	AwQueueIter it;
	uint64		start;
	uint64		first;

	aw_queue_iter_begin(q, &it);
	start = it.pos;
	first = it.write_id;
	while (aw_queue_iter_next(&it) != NULL)
		;
	if (it.pos != start)
		aw_queue_consume(q, it.pos, it.write_id);
	return it.write_id - first;
}

/*
 * Whether a published write in the queue targets one of relids, or the
 * walk cannot tell (it stopped at an entry still being committed).
 */
bool
aw_queue_has_writes_for(AwQueue *q, List *relids)
{
	AwQueueIter it;
	AwEntryHeader *hdr;

	uint64		tail;

	aw_queue_iter_begin(q, &it);
	tail = it.pos;
	while ((hdr = aw_queue_iter_next(&it)) != NULL)
		if (hdr->state == AW_ENTRY_READY && list_member_oid(relids, hdr->relid))
			return true;

	/*
	 * Read without the lock: if tail moved meanwhile, the bytes walked may
	 * have been reused; say "maybe".
	 */
	pg_read_barrier();
	return it.pos < it.head || pg_atomic_read_u64(&q->tail) != tail;
}

/*
 * Enqueue time of the oldest queued write, or 0.  Read without the lock:
 * the value is used only if tail did not move meanwhile, as the entry's
 * bytes cannot be reused before tail passes them.
 */
TimestampTz
aw_queue_oldest_enqueued_at(AwQueue *q)
{
	for (int attempt = 0; attempt < 3; attempt++)
	{
		AwQueueIter it;
		AwEntryHeader *hdr;
		uint64		tail;
		TimestampTz result = 0;

		aw_queue_iter_begin(q, &it);
		tail = it.pos;
		while ((hdr = aw_queue_iter_next(&it)) != NULL)
		{
			if (hdr->state == AW_ENTRY_READY)
			{
				result = aw_clock_to_timestamp(hdr->enqueued_ms, GetCurrentTimestamp());
				break;
			}
		}
		pg_read_barrier();
		if (pg_atomic_read_u64(&q->tail) == tail)
			return result;
	}
	return 0;
}

/*
 * Note that a worker is being started for the queue, unless one runs, the
 * queue is held by database DDL, or a start was requested less than
 * retry_ms ago.  Returns whether the caller should register the worker,
 * for database *dboid.
 */
bool
aw_queue_start_launch(AwQueue *q, int retry_ms, Oid *dboid)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		launch = false;

	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	if (q->dboid != InvalidOid && q->worker_pid == 0 && !q->hold &&
		(!q->launching ||
		 TimestampDifferenceExceeds(q->launch_time, now, retry_ms)))
	{
		q->launching = true;
		q->launch_time = now;
		launch = true;
	}
	*dboid = q->dboid;
	LWLockRelease(&q->lock);
	return launch;
}

/*
 * Claim the queue for this process as its worker, unless the slot moved on
 * to another database, another worker owns it, or database DDL holds it.
 */
bool
aw_queue_claim(AwQueue *q, Oid dboid)
{
	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	if (q->dboid != dboid || q->worker_pid != 0 || q->hold)
	{
		if (q->dboid == dboid && q->worker_pid == 0)
			q->launching = false;
		LWLockRelease(&q->lock);
		return false;
	}
	q->worker_pid = MyProcPid;
	q->worker_latch = MyLatch;
	q->launching = false;
	q->closed = false;
	LWLockRelease(&q->lock);
	pg_atomic_write_u32(&q->applying, 0);
	ConditionVariableBroadcast(&q->worker_cv);
	return true;
}

/* Give up the queue if this process still owns it as its worker. */
void
aw_queue_release_worker(AwQueue *q)
{
	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	if (q->worker_pid == MyProcPid)
	{
		q->worker_pid = 0;
		q->worker_latch = NULL;
		/* An orderly exit has aborted any batch it did not release. */
		pg_atomic_write_u32(&q->applying, 0);
	}
	LWLockRelease(&q->lock);
	ConditionVariableBroadcast(&q->worker_cv);
	ConditionVariableBroadcast(&q->applied_cv);
}

/* The worker gives up its queue if nothing is queued; returns whether. */
bool
aw_queue_release_if_empty(AwQueue *q)
{
	bool		empty;

	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	empty = (q->head == pg_atomic_read_u64(&q->tail));
	if (empty)
	{
		q->worker_pid = 0;
		q->worker_latch = NULL;
	}
	LWLockRelease(&q->lock);
	return empty;
}

/*
 * Ask the queue's worker to exit: SIGTERM, which is die in a worker, ends
 * it at its next interrupt check, also while it waits for a lock.  Returns
 * true when no worker runs.
 */
bool
aw_queue_terminate_worker(AwQueue *q)
{
	bool		gone;

	LWLockAcquire(&q->lock, LW_SHARED);
	gone = (q->worker_pid == 0);
	if (!gone)
		(void) kill(q->worker_pid, SIGTERM);
	LWLockRelease(&q->lock);
	return gone;
}

/*
 * Hold the queue of database dboid (no worker may start; database DDL) or
 * release it.  Returns false, changing nothing, if the slot is not bound to
 * dboid any more.  *pending says whether writes are queued.
 */
bool
aw_queue_set_hold(AwQueue *q, Oid dboid, bool hold, bool *pending)
{
	bool		bound;

	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	bound = (q->dboid == dboid);
	if (bound)
		q->hold = hold;
	*pending = q->head != pg_atomic_read_u64(&q->tail);
	LWLockRelease(&q->lock);
	return bound;
}

/*
 * Pause or resume the queue of database dboid.  Returns false, changing
 * nothing, if the slot is not bound to dboid any more.  *latch receives the
 * worker's latch, *pending whether writes are queued.
 */
bool
aw_queue_set_paused(AwQueue *q, Oid dboid, bool paused, Latch **latch,
					bool *pending)
{
	bool		bound;

	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	bound = (q->dboid == dboid);
	if (bound)
		q->paused = paused;
	*latch = q->worker_latch;
	*pending = q->head != pg_atomic_read_u64(&q->tail);
	LWLockRelease(&q->lock);
	return bound;
}

/* The worker notes whether its database refuses connections (stats). */
void
aw_queue_set_closed(AwQueue *q, bool closed)
{
	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	q->closed = closed;
	LWLockRelease(&q->lock);
}

/*
 * Count a backend in (delta 1) or out (-1) of those waiting for the queue:
 * the worker applies at once while any wait, and the slot is not handed to
 * another database.
 */
void
aw_queue_count_waiter(AwQueue *q, int delta)
{
	if (delta > 0)
		pg_atomic_fetch_add_u32(&q->flush_waiters, 1);
	else
		pg_atomic_fetch_sub_u32(&q->flush_waiters, 1);
}

/*
 * Ask the worker to apply the writes of committed prepared transactions,
 * after every write queued so far.  Returns the worker's latch, or NULL
 * when none runs.
 */
Latch *
aw_queue_request_sweep(AwQueue *q)
{
	Latch	   *latch;

	pg_atomic_write_u64(&q->sweep_after_id,
						Max(pg_atomic_read_u64(&q->sweep_after_id),
							aw_queue_last_write_id(q)));
	pg_atomic_fetch_add_u64(&q->sweeps_requested, 1);
	LWLockAcquire(&q->lock, LW_SHARED);
	latch = q->worker_latch;
	LWLockRelease(&q->lock);
	return latch;
}

/*
 * Whether a sweep was requested and the writes queued before the request
 * are applied.
 */
bool
aw_queue_sweep_due(AwQueue *q)
{
	return pg_atomic_read_u64(&q->sweeps_requested) !=
		pg_atomic_read_u64(&q->sweeps_done) &&
		pg_atomic_read_u64(&q->applied_write_id) >=
		pg_atomic_read_u64(&q->sweep_after_id);
}

/* The requests up to requested are swept: wake those waiting for them. */
void
aw_queue_sweep_done(AwQueue *q, uint64 requested)
{
	pg_atomic_write_u64(&q->sweeps_done, requested);
	ConditionVariableBroadcast(&q->applied_cv);
}

/*
 * The highest write id any queue gave out, unbound ones included.  In the
 * postmaster at exit, when no other process runs.
 */
uint64
aw_queue_id_high_water(void)
{
	uint64		high_water = aw_control->id_high_water;

	for (int i = 0; i < aw_control->max_databases; i++)
	{
		AwQueue    *q = &aw_control->queues[i];

		if (q->dboid != InvalidOid)
			high_water = Max(high_water, q->next_write_id - 1);
	}
	return high_water;
}

/*
 * Take the layout seed of a loaded save file (the postmaster, before any
 * backend starts): its rows' fingerprints were made with it.
 */
void
aw_queue_set_layout_seed(uint64 seed)
{
	if (seed != aw_control->layout_seed &&
		!aw_ids_file_write(pg_atomic_read_u64(&aw_control->id_ceiling), seed))
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", AW_IDS_FILE)));
	aw_control->layout_seed = seed;
	aw_layout_seed = seed;
}

/* The layout seed, for the save file. */
uint64
aw_queue_layout_seed(void)
{
	return aw_control->layout_seed;
}

/* At startup: no queue may give out ids up to id again. */
void
aw_queue_raise_id_high_water(uint64 id)
{
	aw_control->id_high_water = Max(aw_control->id_high_water, id);
}

/* At startup: copy saved entry bytes into an unbound queue's ring. */
void
aw_queue_restore_bytes(AwQueue *q, uint64 offset, const char *data, Size len)
{
	Assert(q->dboid == InvalidOid && offset + len <= aw_control->capacity);
	memcpy(aw_queue_ring(q) + offset, data, len);
}

/*
 * At startup: bind a queue to database dboid with the nbytes of entries
 * aw_queue_restore_bytes() copied, whose ids run from first_id to
 * next_write_id - 1.  Returns false, leaving the queue unbound, unless the
 * entries are well formed, exactly that many, and without padding.
 */
bool
aw_queue_restore(AwQueue *q, Oid dboid, uint64 nbytes, uint64 first_id,
				 uint64 next_write_id)
{
	AwQueueIter it;
	AwEntryHeader *hdr;
	uint64		count = 0;
	uint64		entry_bytes = 0;

	if (first_id == 0 || next_write_id < first_id || nbytes > aw_control->capacity)
		return false;
	it.queue = q;
	it.pos = 0;
	it.head = nbytes;
	it.write_id = first_id - 1;
	while ((hdr = aw_queue_iter_next(&it)) != NULL)
	{
		count += aw_entry_ids(hdr);
		entry_bytes += hdr->length;
	}
	if (it.pos != nbytes || entry_bytes != nbytes ||
		count != next_write_id - first_id)
		return false;
	q->dboid = dboid;
	q->head = nbytes;
	q->next_write_id = next_write_id;
	pg_atomic_write_u64(&q->tail, 0);
	pg_atomic_write_u64(&q->applied_write_id, first_id - 1);
	aw_queue_raise_id_high_water(next_write_id - 1);
	aw_queue_mark_recovering(q);
	return true;
}

/* At startup: leave every queue empty and unbound (a save file was bad). */
void
aw_queue_unbind_all(void)
{
	for (int i = 0; i < aw_control->max_databases; i++)
	{
		AwQueue    *q = &aw_control->queues[i];

		q->dboid = InvalidOid;
		q->head = 0;
		pg_atomic_write_u64(&q->tail, 0);
	}
}

/*
 * In the postmaster at startup: database dboid has durable writes in the
 * WAL (it has a replication slot), to read back before its queue gives out
 * write ids.  Returns false when the list is full.
 */
bool
aw_queue_note_recovery(Oid dboid)
{
	if (aw_control->nrecover >= AW_MAX_RECOVER)
		return false;
	aw_control->recover[aw_control->nrecover++] = dboid;
	for (int i = 0; i < aw_control->max_databases; i++)
	{
		AwQueue    *q = &aw_control->queues[i];

		/* A queue restored from the save file. */
		if (q->dboid == dboid)
			aw_queue_mark_recovering(q);
	}
	return true;
}

/*
 * In the postmaster at startup: the server starts as a standby.  Once
 * promoted, its durable writes may be in the WAL it replayed, with no slot
 * of its own to say so: every database recovers until the launcher has
 * looked (aw_queue_failover_done).
 */
void
aw_queue_note_failover(void)
{
	aw_control->failover_pending = true;
	aw_control->started_in_recovery = true;
}

/*
 * Whether this server started as a standby or a restored backup, so that a
 * slot made after its recovery may start after WAL its writes needed.  Set
 * before any other process starts.
 */
bool
aw_queue_started_in_recovery(void)
{
	return aw_control->started_in_recovery;
}

/* Whether the launcher has still to look for a promoted standby's writes. */
bool
aw_queue_failover_pending(void)
{
	bool		pending;

	LWLockAcquire(aw_control->lock, LW_SHARED);
	pending = aw_control->failover_pending;
	LWLockRelease(aw_control->lock);
	return pending;
}

/*
 * The launcher has found the databases whose durable writes a promoted
 * standby's WAL holds: list them for recovery; other databases are bound
 * without one from now on (a queue bound meanwhile recovers all the same).
 */
void
aw_queue_failover_done(const Oid *dboids, int n)
{
	LWLockAcquire(aw_control->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		bool		listed = false;

		for (int j = 0; j < aw_control->nrecover; j++)
			if (aw_control->recover[j] == dboids[i])
				listed = true;
		if (!listed && aw_control->nrecover < AW_MAX_RECOVER)
			aw_control->recover[aw_control->nrecover++] = dboids[i];
	}
	aw_control->failover_pending = false;
	LWLockRelease(aw_control->lock);
}

/* The databases still to recover, up to max; returns how many. */
int
aw_queue_recovery_list(Oid *dboids, int max)
{
	int			n;

	LWLockAcquire(aw_control->lock, LW_SHARED);
	n = Min(max, aw_control->nrecover);
	memcpy(dboids, aw_control->recover, sizeof(Oid) * n);
	LWLockRelease(aw_control->lock);
	return n;
}

/* Database dboid has nothing more to recover in this server run. */
void
aw_queue_recovery_forget(Oid dboid)
{
	LWLockAcquire(aw_control->lock, LW_EXCLUSIVE);
	for (int i = 0; i < aw_control->nrecover; i++)
	{
		if (aw_control->recover[i] == dboid)
		{
			aw_control->recover[i] = aw_control->recover[--aw_control->nrecover];
			break;
		}
	}
	LWLockRelease(aw_control->lock);
}

/*
 * In the worker of a recovering queue: begin a walk over the entries the
 * ring holds already (restored from the save file).
 */
void
aw_queue_iter_begin_recovering(AwQueue *q, AwQueueIter *it)
{
	LWLockAcquire(&q->lock, LW_SHARED);
	it->queue = q;
	it->pos = pg_atomic_read_u64(&q->tail);
	it->head = q->head;
	it->write_id = q->recover_base;
	LWLockRelease(&q->lock);
}

/*
 * Whether database dboid has durable writes still to read back from the WAL
 * in this server run (it may have no queue yet).
 */
bool
aw_queue_recovery_pending(Oid dboid)
{
	bool		pending;

	LWLockAcquire(aw_control->lock, LW_SHARED);
	pending = aw_queue_must_recover(dboid);
	LWLockRelease(aw_control->lock);
	return pending;
}

/*
 * A counter asyncwrite bumps whenever it drops a replication slot: a
 * backend that saw a slot keep the WAL may trust that while it is unchanged
 * (aw_queue_bump_slot_epoch).
 */
uint64
aw_queue_slot_epoch(void)
{
	return pg_atomic_read_u64(&aw_control->slot_epoch);
}

/* A replication slot of asyncwrite was dropped. */
void
aw_queue_bump_slot_epoch(void)
{
	pg_atomic_fetch_add_u64(&aw_control->slot_epoch, 1);
}

/*
 * Durable writes first..last of the queue's database were found lost (their
 * WAL gone before they were applied), for the statistics.
 */
void
aw_queue_note_lost(AwQueue *q, uint64 first, uint64 last)
{
	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	q->lost += last - first + 1;
	if (q->nlost_ranges == AW_LOST_RANGES)
	{
		memmove(q->lost_ranges[0], q->lost_ranges[1],
				sizeof(q->lost_ranges[0]) * (AW_LOST_RANGES - 1));
		q->nlost_ranges--;
	}
	q->lost_ranges[q->nlost_ranges][0] = first;
	q->lost_ranges[q->nlost_ranges][1] = last;
	q->nlost_ranges++;
	LWLockRelease(&q->lock);
}

/*
 * A message up to end was logged with synchronous_commit off and no commit
 * record to have the WAL writer flush it: note it for the launcher, which
 * does that for all such messages at once.  Returns the launcher's latch to
 * set when this is the first message since it last did, else NULL, and
 * *no_launcher when no launcher runs to be woken.
 *
 * The LSN is raised before the flag is set, and the launcher clears the
 * flag before it reads the LSN (both full barriers): a message the launcher
 * read too early finds the flag clear and wakes it again.  The launcher
 * publishes its latch (with a barrier) before it first reads the flag: a
 * backend that finds no latch set the flag before that read.  With no
 * launcher (starting, or gone and not yet restarted) the caller has the WAL
 * writer flush the message itself.
 */
Latch *
aw_queue_note_unflushed(XLogRecPtr end, bool *no_launcher)
{
	uint64		seen = pg_atomic_read_u64(&aw_control->unflushed_lsn);
	Latch	   *latch;

	while (seen < end &&
		   !pg_atomic_compare_exchange_u64(&aw_control->unflushed_lsn, &seen, end))
		;
	if (pg_atomic_read_u32(&aw_control->unflushed_owed) != 0 ||
		pg_atomic_exchange_u32(&aw_control->unflushed_owed, 1) != 0)
	{
		*no_launcher = false;
		return NULL;
	}
	latch = aw_control->launcher_latch;
	*no_launcher = (latch == NULL);
	/* None to take it: the caller flushes, the next message looks again. */
	if (latch == NULL)
		pg_atomic_write_u32(&aw_control->unflushed_owed, 0);
	return latch;
}

/* Whether messages wait for the launcher to have them flushed. */
bool
aw_queue_unflushed_owed(void)
{
	return pg_atomic_read_u32(&aw_control->unflushed_owed) != 0;
}

/*
 * The launcher takes the end of the messages owed a flush (see
 * aw_queue_note_unflushed); later ones wake it again.
 */
XLogRecPtr
aw_queue_take_unflushed(void)
{
	pg_atomic_exchange_u32(&aw_control->unflushed_owed, 0);
	return pg_atomic_read_u64(&aw_control->unflushed_lsn);
}

/*
 * The launcher, as it starts: backends set this latch for messages owed a
 * flush.  A pointer is written at once; a backend that reads the one of a
 * launcher gone sets some other process's latch, which is harmless.
 */
void
aw_queue_set_launcher_latch(Latch *latch)
{
	aw_control->launcher_latch = latch;
	/* Before the launcher reads the flag: see aw_queue_note_unflushed. */
	pg_memory_barrier();
}

/* The id ceiling on disk: no id given out is above it. */
uint64
aw_queue_id_ceiling(void)
{
	return pg_atomic_read_u64(&aw_control->id_ceiling);
}

/* Whether the queue's ids are known to be above its applied mark. */
bool
aw_queue_ids_checked(AwQueue *q)
{
	bool		checked;

	LWLockAcquire(&q->lock, LW_SHARED);
	checked = q->ids_checked;
	LWLockRelease(&q->lock);
	return checked;
}

/*
 * Make the queue's next write id greater than above (the database's applied
 * mark, which may come from a server run whose ids this one does not know:
 * a promoted standby, a restored backup), with a gap entry consuming the
 * ids in between: a write id at or below the mark would count as applied
 * in a recovery.  Once per binding; returns false, changing nothing, when
 * the queue has no room for the gap now (the next reservation tries again)
 * or was bound to another database.
 */
bool
aw_queue_skip_ids(AwQueue *q, Oid dboid, uint64 above)
{
	uint64		capacity = aw_control->capacity;
	bool		done = true;

	aw_queue_ids_cover(above + 1);
	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	if (q->dboid != dboid || q->recovering)
		done = false;
	else if (!q->ids_checked && q->next_write_id <= above)
	{
		uint64		room_to_end = capacity - q->head % capacity;
		uint64		pad = (room_to_end < sizeof(AwEntryHeader)) ? room_to_end : 0;

		if (q->head + pad + sizeof(AwEntryHeader) - pg_atomic_read_u64(&q->tail) > capacity)
			done = false;
		else
		{
			/* An implicit filler (pad) needs no header: less than one fits. */
			aw_entry_make_gap((AwEntryHeader *) (aw_queue_ring(q) + (q->head + pad) % capacity),
							  above + 1 - q->next_write_id);
			q->head += pad + sizeof(AwEntryHeader);
			q->next_write_id = above + 1;
		}
	}
	if (done)
		q->ids_checked = true;
	LWLockRelease(&q->lock);
	return done;
}

/* Whether the queue waits for its durable writes to be read back. */
bool
aw_queue_recovering(AwQueue *q)
{
	bool		recovering;

	LWLockAcquire(&q->lock, LW_SHARED);
	recovering = q->recovering;
	LWLockRelease(&q->lock);
	return recovering;
}

/*
 * The ceiling of write ids at startup: every id an earlier server run gave
 * out is at most this.
 */
uint64
aw_queue_startup_ceiling(void)
{
	return aw_control->startup_ceiling;
}

/*
 * In the queue's worker, while it recovers (no producer reserves, the
 * worker is the only reader): refill the ring with entries[0..n), whose
 * write ids ids[] are increasing and above applied_id, every id of an
 * earlier server run not among them becoming part of a gap entry; then
 * give out ids again above everything ever given out, here or, as the WAL
 * says (seen_id), by the primary this server was a standby of.  recovered
 * (those read back from the WAL) is for the statistics.  Returns false,
 * changing nothing, when they do not fit in the ring.
 */
bool
aw_queue_rebuild(AwQueue *q, uint64 applied_id, uint64 seen_id, int n,
				 AwEntryHeader **entries, const uint64 *ids, uint64 recovered)
{
	char	   *ring = aw_queue_ring(q);
	uint64		capacity = aw_control->capacity;
	uint64		pos = 0;
	uint64		next_id = applied_id + 1;
	uint64		last_id;
	Size		needed = sizeof(AwEntryHeader);

	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	Assert(q->recovering && q->worker_pid == MyProcPid);
	last_id = Max(q->next_write_id - 1, aw_control->startup_ceiling);
	last_id = Max(last_id, applied_id);
	last_id = Max(last_id, seen_id);
	if (n > 0)
	{
		last_id = Max(last_id, ids[n - 1]);
		/* The ids before the first entry are done: no leading gap. */
		applied_id = ids[0] - 1;
		next_id = ids[0];
	}
	else
	{
		/* Nothing to apply: every id given out so far is done. */
		applied_id = Max(applied_id, last_id);
		next_id = applied_id + 1;
	}

	/*
	 * The entries and the gaps between them took at least as much room in the
	 * ring they come from; the last gap takes the header's room that
	 * reservations leave free.
	 */
	for (int i = 0; i < n; i++)
		needed += entries[i]->length +
			((i > 0 && ids[i] > ids[i - 1] + 1) ? sizeof(AwEntryHeader) : 0);
	if (needed > capacity)
	{
		LWLockRelease(&q->lock);
		return false;
	}
	for (int i = 0; i < n; i++)
	{
		AwEntryHeader *hdr;

		Assert(ids[i] >= next_id);
		if (ids[i] > next_id)
		{
			aw_entry_make_gap((AwEntryHeader *) (ring + pos), ids[i] - next_id);
			pos += sizeof(AwEntryHeader);
		}
		hdr = (AwEntryHeader *) (ring + pos);
		memcpy(hdr, entries[i], entries[i]->length);
		hdr->state = AW_ENTRY_READY;
		pos += hdr->length;
		next_id = ids[i] + 1;
	}
	if (last_id >= next_id)
	{
		aw_entry_make_gap((AwEntryHeader *) (ring + pos), last_id + 1 - next_id);
		pos += sizeof(AwEntryHeader);
	}
	q->head = pos;
	q->next_write_id = last_id + 1;
	q->recovered = recovered;
	pg_atomic_write_u64(&q->tail, 0);
	pg_atomic_write_u64(&q->applied_write_id, applied_id);
	pg_write_barrier();
	q->recovering = false;
	q->ids_checked = true;
	LWLockRelease(&q->lock);
	aw_queue_recovery_forget(q->dboid);
	ConditionVariableBroadcast(&q->worker_cv);
	ConditionVariableBroadcast(&q->applied_cv);
	return true;
}

/*
 * Sample the WAL insert position together with the next write id, under
 * the queue's lock: a write whose id is at least *next_id is logged after
 * *lsn (its id is reserved before it is logged).  *empty says whether every
 * id given out is applied.  Returns false, with *empty false, when the
 * queue is not bound to dboid.
 */
bool
aw_queue_sample(AwQueue *q, Oid dboid, XLogRecPtr *lsn, uint64 *next_id,
				bool *empty)
{
	bool		bound;

	LWLockAcquire(&q->lock, LW_SHARED);
	bound = (q->dboid == dboid);
	*lsn = GetXLogInsertRecPtr();
	*next_id = q->next_write_id;
	*empty = bound && !q->recovering &&
		pg_atomic_read_u64(&q->applied_write_id) == q->next_write_id - 1;
	LWLockRelease(&q->lock);
	return bound;
}

/*
 * Sample the WAL insert position for a database with no queue bound, under
 * the control lock: a queue bound to it later is bound, and gives out ids,
 * after *lsn.  Returns false when it has a queue (or must recover).
 */
bool
aw_queue_sample_unbound(Oid dboid, XLogRecPtr *lsn)
{
	bool		unbound = true;

	LWLockAcquire(aw_control->lock, LW_SHARED);
	for (int i = 0; i < aw_control->max_databases; i++)
		if (aw_control->queues[i].dboid == dboid)
			unbound = false;
	if (aw_queue_must_recover(dboid))
		unbound = false;
	*lsn = GetXLogInsertRecPtr();
	LWLockRelease(aw_control->lock);
	return unbound;
}
