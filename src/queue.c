/*-------------------------------------------------------------------------
 *
 * queue.c
 *		The shared-memory queues: one ring of variable-length entries per
 *		database, filled by any backend and drained in order by the
 *		database's apply worker.
 *
 * Producers take the queue's spinlock only to reserve space and a write id;
 * they copy the payload outside the lock and then publish the entry by
 * setting its state after a write barrier.  The worker consumes published
 * entries strictly in ring order, so write ids are applied in order.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/mman.h>
#include <unistd.h>

#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "asyncwrite.h"

AwControl  *aw_control = NULL;
static char *aw_rings = NULL;

/* This backend's queue, revalidated under the queue's mutex at each use. */
static AwQueue *my_queue = NULL;

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
aw_shmem_size(void)
{
	return add_size(aw_control_size(aw_max_databases),
					mul_size(aw_ring_capacity(), aw_max_databases));
}

/* Reset a queue slot to an empty, unbound state whose ids follow first_id. */
static void
aw_queue_reset(AwQueue *q, uint64 last_id)
{
	q->dboid = InvalidOid;
	q->paused = false;
	q->launching = false;
	q->hold = false;
	q->exit_requested = false;
	q->extension_dropped = false;
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
}

/* Create or attach to the shared state; called from shmem_startup_hook. */
void
aw_shmem_init(void)
{
	bool		found;
	int			i;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	aw_control = ShmemInitStruct("asyncwrite", aw_shmem_size(), &found);
	aw_rings = (char *) aw_control + aw_control_size(aw_max_databases);
	if (!found)
	{
		aw_control->lock = &(GetNamedLWLockTranche("asyncwrite"))->lock;
		aw_control->queue_tranche = LWLockNewTrancheId();
		aw_control->max_databases = aw_max_databases;
		aw_control->capacity = aw_ring_capacity();
		aw_control->id_high_water = 0;
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
	}
	LWLockRelease(AddinShmemInitLock);
	LWLockRegisterTranche(aw_control->queue_tranche, "asyncwrite queue");
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

/* Ring bytes a producer maps into its address space at a time. */
#define AW_MAP_CHUNK (256 * 1024)

/* Start of a queue's ring. */
char *
aw_queue_ring(AwQueue *q)
{
	return aw_rings + (q - aw_control->queues) * aw_control->capacity;
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

/* Whether an unbound-able slot holds nothing worth keeping. */
static bool
aw_queue_evictable(AwQueue *q)
{
	return q->head == pg_atomic_read_u64(&q->tail) &&
		q->worker_pid == 0 && !q->launching && !q->paused && !q->hold &&
		pg_atomic_read_u32(&q->flush_waiters) == 0;
}

/*
 * The queue of a database, binding a free or idle slot to it if it has none.
 * Write ids stay increasing per database across rebinding because a new
 * binding starts above every id an unbound slot ever gave out.
 */
AwQueue *
aw_queue_bind(Oid dboid)
{
	AwQueue    *q = aw_queue_lookup(dboid);
	AwQueue    *victim = NULL;
	int			i;

	if (q != NULL)
		return q;

	LWLockAcquire(aw_control->lock, LW_EXCLUSIVE);
	for (i = 0; i < aw_control->max_databases; i++)
	{
		AwQueue    *c = &aw_control->queues[i];

		if (c->dboid == dboid)
		{
			LWLockRelease(aw_control->lock);
			return c;
		}
		if (victim == NULL && c->dboid == InvalidOid)
			victim = c;
	}
	/* No free slot: take one whose database has nothing queued. */
	for (i = 0; victim == NULL && i < aw_control->max_databases; i++)
	{
		AwQueue    *c = &aw_control->queues[i];
		bool		idle;

		LWLockAcquire(&c->lock, LW_EXCLUSIVE);
		idle = aw_queue_evictable(c);
		LWLockRelease(&c->lock);
		if (idle)
			victim = c;
	}
	if (victim == NULL)
	{
		LWLockRelease(aw_control->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no asyncwrite queue is free for this database"),
				 errdetail("All %d queues are in use by databases with queued writes or running workers.",
						   aw_control->max_databases),
				 errhint("Increase asyncwrite.max_databases and restart the server.")));
	}

	LWLockAcquire(&victim->lock, LW_EXCLUSIVE);
	if (victim->next_write_id - 1 > aw_control->id_high_water)
		aw_control->id_high_water = victim->next_write_id - 1;
	aw_queue_reset(victim, aw_control->id_high_water);
	victim->dboid = dboid;
	LWLockRelease(&victim->lock);
	LWLockRelease(aw_control->lock);
	return victim;
}

/* Highest write id handed out by a queue so far. */
uint64
aw_queue_last_write_id(AwQueue *q)
{
	uint64		id;

	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	id = q->next_write_id - 1;
	LWLockRelease(&q->lock);
	return id;
}

/* Raise the error of a write that found its queue full. */
static void
aw_queue_full_error(bool timed_out)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("asyncwrite queue of database \"%s\" is full",
					get_database_name(MyDatabaseId)),
			 timed_out ?
			 errdetail("No space was freed within asyncwrite.full_timeout (%d ms).",
					   aw_full_timeout_ms) :
			 errdetail("asyncwrite.on_full is \"error\"."),
			 errhint("Check that the queue is not paused and that its worker runs (asyncwrite.stats); "
					 "increase asyncwrite.queue_size, or set asyncwrite.on_full to \"sync\" to write such rows at once.")));
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
 * Reserve one contiguous block of len bytes for nentries entries (never
 * wrapping) and take their consecutive write ids; the first id is returned.
 * Only the first entry is marked reserved here: the worker cannot pass it,
 * so the caller marks the others before publishing the first.  While the
 * ring is full, asyncwrite.on_full decides: wait on the "space" condition
 * variable (up to full_timeout), fail, or return NULL so that the caller
 * writes synchronously.  The entry comes back marked reserved, with what
 * the caller needs to wake or start the worker.
 */
static AwEntryHeader *
aw_queue_reserve(Size len, int nentries, uint64 *write_id, Latch **worker_latch,
				 bool *need_worker, bool *wake, AwQueue **queue)
{
	uint64		capacity = aw_control->capacity;
	AwQueue    *q = my_queue;
	bool		sleeping = false;
	AwEntryHeader *entry = NULL;
	TimestampTz wait_start = 0;

	for (;;)
	{
		uint64		tail;
		uint64		room_to_end;
		uint64		pad;
		char	   *ring;
		uint64		pending;

		if (q == NULL)
			q = my_queue = aw_queue_bind(MyDatabaseId);

		aw_queue_map_ahead(q, len);
		LWLockAcquire(&q->lock, LW_EXCLUSIVE);
		if (q->dboid != MyDatabaseId)
		{
			/* The slot was given to another database since we looked. */
			LWLockRelease(&q->lock);
			q = my_queue = NULL;
			continue;
		}

		tail = pg_atomic_read_u64(&q->tail);
		room_to_end = capacity - q->head % capacity;
		pad = (room_to_end < len) ? room_to_end : 0;

		if (q->head + pad + len - tail <= capacity)
		{
			ring = aw_queue_ring(q);
			if (pad >= sizeof(AwEntryHeader))
			{
				/* Filler entry so the worker skips to the ring's start. */
				AwEntryHeader *filler = (AwEntryHeader *) (ring + q->head % capacity);

				memset(filler, 0, sizeof(AwEntryHeader));
				filler->length = (uint32) pad;
				filler->kind = AW_KIND_PAD;
				filler->state = AW_ENTRY_READY;
			}
			entry = (AwEntryHeader *) (ring + (q->head + pad) % capacity);
			entry->state = AW_ENTRY_RESERVED;
			q->head += pad + len;
			*write_id = q->next_write_id;
			q->next_write_id += nentries;
			q->enqueued += nentries;
			pending = q->next_write_id - 1 - pg_atomic_read_u64(&q->applied_write_id);
			*worker_latch = q->worker_latch;
			*need_worker = (q->worker_pid == 0 && !q->hold);
			*wake = (pending == (uint64) nentries || pending >= (uint64) aw_batch_size);
			LWLockRelease(&q->lock);
			break;
		}

		/* Full. */
		*worker_latch = q->worker_latch;
		*need_worker = (q->worker_pid == 0 && !q->hold);
		LWLockRelease(&q->lock);

		if (aw_on_full == AW_ON_FULL_ERROR)
			aw_queue_full_error(false);
		if (aw_on_full == AW_ON_FULL_SYNC)
			break;

		if (*worker_latch)
			SetLatch(*worker_latch);
		else if (*need_worker)
			aw_worker_ensure(q);
		if (!sleeping)
		{
			ConditionVariablePrepareToSleep(&q->space_cv);
			sleeping = true;
			wait_start = GetCurrentTimestamp();
		}
		else
		{
			if (TimestampDifferenceExceeds(wait_start, GetCurrentTimestamp(),
										   aw_full_timeout_ms))
			{
				ConditionVariableCancelSleep();
				aw_queue_full_error(true);
			}
			if (ConditionVariableTimedSleep(&q->space_cv,
											Min(1000, Max(1, aw_full_timeout_ms)),
											PG_WAIT_EXTENSION))
				aw_check_worker_blocked(q, "room in the asyncwrite queue");
		}
		CHECK_FOR_INTERRUPTS();
	}
	if (sleeping)
		ConditionVariableCancelSleep();
	*queue = q;
	return entry;
}

/*
 * Fill an entry's header (state reserved) and copy its payload and extra
 * bytes: the one layout of a write, in the ring or in backend memory.
 */
void
aw_entry_fill(AwEntryHeader *entry, const AwWriteSpec *w, TimestampTz now)
{
	entry->state = AW_ENTRY_RESERVED;
	entry->length = (uint32) aw_entry_size(w->payload_len, w->extra_len);
	entry->kind = w->kind;
	entry->relid = w->relid;
	entry->roleid = w->roleid;
	entry->fingerprint = w->fingerprint;
	entry->flags = (uint16) w->flags;
	entry->enqueued_ms = aw_clock_ms(now);
	memcpy(AW_ENTRY_PAYLOAD(entry), w->payload, w->payload_len);
	if (w->extra_len > 0)
		memcpy(AW_ENTRY_PAYLOAD(entry) + MAXALIGN(w->payload_len), w->extra,
			   w->extra_len);
}

/* Refuse an entry larger than a quarter of the queue. */
static void
aw_queue_too_large(Size len)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("row is too large for the asyncwrite queue"),
			 errdetail("The row needs %zu bytes; a queued row may use at most a quarter of asyncwrite.queue_size (%zu bytes).",
					   len, (Size) (aw_control->capacity / 4)),
			 errhint("Increase asyncwrite.queue_size, or set asyncwrite.on_full to \"sync\" to write such rows at once.")));
}

/*
 * Reserve an entry for one write, fill it and copy its payload (and the
 * optional extra bytes after it) outside any lock, but leave it unpublished:
 * the worker stops at it until aw_queue_publish().  Returns NULL, reserving
 * nothing, when the queue is full and asyncwrite.on_full is "sync".
 */
AwEntryHeader *
aw_queue_prepare(Oid relid, Oid roleid, uint32 fingerprint,
				 uint8 kind, uint32 flags, const void *payload, Size payload_len,
				 const void *extra, Size extra_len, uint64 *write_id,
				 AwPublish *publish)
{
	Size		len = aw_entry_size(payload_len, extra_len);
	AwEntryHeader *entry;
	AwWriteSpec spec;

	aw_check_available();
	if (len > aw_control->capacity / 4)
	{
		if (aw_on_full == AW_ON_FULL_SYNC)
			return NULL;
		aw_queue_too_large(len);
	}

	entry = aw_queue_reserve(len, 1, write_id, &publish->latch,
							 &publish->need_worker, &publish->wake,
							 &publish->queue);
	if (entry == NULL)
		return NULL;

	/* Nothing below may fail: the entry is reserved and must be published. */
	spec.relid = relid;
	spec.roleid = roleid;
	spec.fingerprint = fingerprint;
	spec.kind = kind;
	spec.flags = flags;
	spec.payload = payload;
	spec.payload_len = payload_len;
	spec.extra = extra;
	spec.extra_len = extra_len;
	aw_entry_fill(entry, &spec, GetCurrentTimestamp());
	return entry;
}

/*
 * aw_queue_reserve() with on_full "sync" taken as "wait": at commit it is
 * too late to write synchronously.
 */
static char *
aw_queue_reserve_waiting(Size len, int n, uint64 *first_id, AwPublish *publish)
{
	int			save_on_full = aw_on_full;
	char	   *block;

	if (aw_on_full == AW_ON_FULL_SYNC)
		aw_on_full = AW_ON_FULL_WAIT;
	PG_TRY();
	{
		block = (char *) aw_queue_reserve(len, n, first_id, &publish->latch,
										  &publish->need_worker, &publish->wake,
										  &publish->queue);
	}
	PG_FINALLY();
	{
		aw_on_full = save_on_full;
	}
	PG_END_TRY();
	return block;
}

/*
 * Reserve the entries of several writes as one block, waiting for the
 * whole block to fit before reserving anything: a producer never waits for
 * space while it holds reserved entries (which the worker cannot pass).
 * Fills them like aw_queue_prepare(); entries[i] receives each.  The block
 * must be at most a quarter of the queue.
 */
void
aw_queue_prepare_many(int n, const AwWriteSpec *writes, AwEntryHeader **entries,
					  uint64 *first_id, AwPublish *publish)
{
	Size		total = 0;
	char	   *block;
	TimestampTz now = GetCurrentTimestamp();

	aw_check_available();
	for (int i = 0; i < n; i++)
		total += aw_entry_size(writes[i].payload_len, writes[i].extra_len);
	if (total > aw_control->capacity / 4)
		aw_queue_too_large(total);

	block = aw_queue_reserve_waiting(total, n, first_id, publish);
	if (block == NULL)
		elog(ERROR, "could not reserve asyncwrite queue space");

	/* Nothing below may fail: the entries are reserved. */
	for (int i = 0; i < n; i++)
	{
		entries[i] = (AwEntryHeader *) block;
		aw_entry_fill(entries[i], &writes[i], now);
		block += entries[i]->length;
	}
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

/* Wake or start the worker after publishing, as the reservation said. */
void
aw_queue_wake(AwPublish *publish)
{
	if (publish->latch != NULL && publish->wake)
		SetLatch(publish->latch);
	else if (publish->need_worker)
		aw_worker_ensure(publish->queue);
}

/* Bytes a queue entry with this payload and extra takes in the ring. */
Size
aw_entry_size(Size payload_len, Size extra_len)
{
	return MAXALIGN(sizeof(AwEntryHeader) + MAXALIGN(payload_len) + extra_len);
}

/*
 * Queue one write now and set *write_id.  Returns false, queueing nothing,
 * when the queue is full and asyncwrite.on_full is "sync".
 */
bool
aw_queue_submit(Oid relid, Oid roleid, uint32 fingerprint,
				uint8 kind, uint32 flags, const void *payload, Size payload_len,
				const void *extra, Size extra_len, uint64 *write_id)
{
	AwPublish	publish;
	AwEntryHeader *entry;

	entry = aw_queue_prepare(relid, roleid, fingerprint, kind, flags,
							 payload, payload_len, extra, extra_len, write_id,
							 &publish);
	if (entry == NULL)
		return false;
	aw_queue_publish(entry, AW_ENTRY_READY);
	aw_queue_wake(&publish);
	return true;
}

/*
 * The entry at consumer position pos (which must be below head).  Skips the
 * implicit filler left where less than a header fits before the ring's end;
 * *entry_pos receives the entry's own position.
 */
AwEntryHeader *
aw_queue_entry_at(AwQueue *q, uint64 pos, uint64 *entry_pos)
{
	uint64		capacity = aw_control->capacity;
	uint64		room_to_end = capacity - pos % capacity;

	if (room_to_end < sizeof(AwEntryHeader))
		pos += room_to_end;
	*entry_pos = pos;
	return (AwEntryHeader *) (aw_queue_ring(q) + pos % capacity);
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
	uint64		pos = pg_atomic_read_u64(&q->tail);
	uint64		id = pg_atomic_read_u64(&q->applied_write_id);
	uint64		first = id;
	uint64		head;

	LWLockAcquire(&q->lock, LW_EXCLUSIVE);
	head = q->head;
	LWLockRelease(&q->lock);
	while (pos < head)
	{
		AwEntryHeader *hdr = aw_queue_entry_at(q, pos, &pos);

		if (pos >= head || hdr->state == AW_ENTRY_RESERVED)
			break;
		pg_read_barrier();
		if (hdr->kind != AW_KIND_PAD)
			id++;
		pos += hdr->length;
	}
	if (pos != pg_atomic_read_u64(&q->tail))
		aw_queue_consume(q, Min(pos, head), id);
	return id - first;
}

/*
 * Enqueue time of the oldest queued write, or 0.  Read without a lock: the
 * value is used only if tail did not move meanwhile, as the entry's bytes
 * cannot be reused before tail passes them.
 */
TimestampTz
aw_queue_oldest_enqueued_at(AwQueue *q)
{
	for (int attempt = 0; attempt < 3; attempt++)
	{
		uint64		tail = pg_atomic_read_u64(&q->tail);
		uint64		head;
		uint64		pos;
		AwEntryHeader *hdr;
		TimestampTz result = 0;

		LWLockAcquire(&q->lock, LW_EXCLUSIVE);
		head = q->head;
		LWLockRelease(&q->lock);

		pos = tail;
		while (pos < head)
		{
			hdr = aw_queue_entry_at(q, pos, &pos);
			if (pos >= head)
				break;
			pg_read_barrier();
			if (hdr->state == AW_ENTRY_RESERVED)
				break;
			if (hdr->kind != AW_KIND_PAD && hdr->state == AW_ENTRY_READY)
			{
				result = aw_clock_to_timestamp(hdr->enqueued_ms, GetCurrentTimestamp());
				break;
			}
			pos += hdr->length;
		}
		pg_read_barrier();
		if (pg_atomic_read_u64(&q->tail) == tail)
			return result;
	}
	return 0;
}
