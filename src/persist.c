/*-------------------------------------------------------------------------
 *
 * persist.c
 *		Keep queued writes across a clean stop: when the postmaster exits,
 *		whatever is still queued is written to a file under the data
 *		directory, and loaded back into the queues at the next start (as
 *		pg_stat_statements keeps its statistics).
 *
 * A crash does not run this path: what was queued then is lost.  An
 * immediate shutdown does, but its workers were killed without cleaning up,
 * so a batch they were applying is left out (it may have committed).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"

#include "asyncwrite.h"

#define AW_PERSIST_FILE		"asyncwrite.queue"
#define AW_PERSIST_TMP		"asyncwrite.queue.tmp"
#define AW_PERSIST_ASIDE	"asyncwrite.queue.unloaded"
#define AW_PERSIST_LOADING	"asyncwrite.queue.loading"
#define AW_PERSIST_MAGIC	0x41575132	/* "AWQ2": 24-byte entry headers */

/* What the file says of one queue before its entries. */
typedef struct AwPersistQueue
{
	Oid			dboid;
	uint64		first_id;		/* id of the first entry saved */
	uint64		next_write_id;
	uint64		nbytes;			/* bytes of entries that follow */
} AwPersistQueue;

/*
 * Walk the queued entries of q from its tail, up to the first one still
 * being committed; with f, write them out.  Returns the bytes the entries
 * take, and their number in *nentries.
 */
static uint64
aw_persist_entries(AwQueue *q, uint64 pos, FILE *f, uint64 *nentries)
{
	uint64		nbytes = 0;

	*nentries = 0;

	while (pos < q->head)
	{
		AwEntryHeader *hdr = aw_queue_entry_at(q, pos, &pos);

		if (pos >= q->head)
			break;

		/*
		 * An entry still reserved (its transaction was committing when the
		 * server stopped at once) may not even have its length yet: what
		 * follows it cannot be walked, so the save stops here.
		 */
		if (hdr->state == AW_ENTRY_RESERVED ||
			hdr->length < sizeof(AwEntryHeader) || pos + hdr->length > q->head)
		{
			if (f != NULL)
				ereport(LOG,
						(errmsg("asyncwrite did not save the writes of database %u queued after one still being committed",
								q->dboid)));
			break;
		}
		if (hdr->kind != AW_KIND_PAD)
		{
			if (f != NULL)
			{
				AwEntryHeader copy = *hdr;

				fwrite(&copy, sizeof(copy), 1, f);
				fwrite(AW_ENTRY_PAYLOAD(hdr), hdr->length - sizeof(AwEntryHeader), 1, f);
			}
			nbytes += hdr->length;
			(*nentries)++;
		}
		pos += hdr->length;
	}
	return nbytes;
}

/* on_shmem_exit in the postmaster: save every queue's pending writes. */
void
aw_persist_save(int code, Datum arg)
{
	FILE	   *f;
	uint32		magic = AW_PERSIST_MAGIC;
	uint64		high_water;
	uint32		nqueues = 0;

	/* After a crash the queues may be half-written: keep nothing. */
	if (code != 0 || aw_control == NULL)
		return;

	high_water = aw_control->id_high_water;
	for (int i = 0; i < aw_control->max_databases; i++)
	{
		AwQueue    *q = &aw_control->queues[i];

		if (q->dboid == InvalidOid)
			continue;
		high_water = Max(high_water, q->next_write_id - 1);
		if (q->head != pg_atomic_read_u64(&q->tail))
			nqueues++;
	}

	f = AllocateFile(AW_PERSIST_TMP, PG_BINARY_W);
	if (f == NULL)
		goto error;
	fwrite(&magic, sizeof(magic), 1, f);
	fwrite(&high_water, sizeof(high_water), 1, f);
	fwrite(&nqueues, sizeof(nqueues), 1, f);
	for (int i = 0; i < aw_control->max_databases; i++)
	{
		AwQueue    *q = &aw_control->queues[i];
		AwPersistQueue pq;
		uint64		start;
		uint64		nentries;

		if (q->dboid == InvalidOid || q->head == pg_atomic_read_u64(&q->tail))
			continue;
		pq.dboid = q->dboid;
		pq.first_id = pg_atomic_read_u64(&q->applied_write_id) + 1;
		pq.next_write_id = q->next_write_id;
		start = pg_atomic_read_u64(&q->tail);
		if (pg_atomic_read_u32(&q->applying))
		{
			/*
			 * The worker was stopped in the middle of a batch (immediate
			 * shutdown): its transaction may have committed.  Rather than
			 * apply those writes twice, keep only the ones after it.
			 */
			uint64		last = pg_atomic_read_u64(&q->batch_last_id);

			ereport(LOG,
					(errmsg("asyncwrite cannot tell whether " UINT64_FORMAT " writes of database %u were applied; they are not saved",
							last - pq.first_id + 1, pq.dboid),
					 errdetail("The apply worker was stopped while applying them.")));
			start = pg_atomic_read_u64(&q->batch_end);
			pq.first_id = last + 1;
		}
		pq.nbytes = aw_persist_entries(q, start, NULL, &nentries);
		/* Ids stay consecutive: a save cut short ends the ids there too. */
		pq.next_write_id = pq.first_id + nentries;
		fwrite(&pq, sizeof(pq), 1, f);
		aw_persist_entries(q, start, f, &nentries);
		ereport(LOG,
				(errmsg("asyncwrite saved " UINT64_FORMAT " queued writes of database %u",
						pq.next_write_id - pq.first_id, pq.dboid)));
	}
	if (ferror(f) || FreeFile(f) != 0)
	{
		f = NULL;
		goto error;
	}
	(void) durable_rename(AW_PERSIST_TMP, AW_PERSIST_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", AW_PERSIST_TMP),
			 errdetail("The writes still queued are lost.")));
	if (f)
		FreeFile(f);
	unlink(AW_PERSIST_TMP);
}

/*
 * Check that the entries read into a ring are well formed and that there
 * are exactly as many as the ids they claim.
 */
static bool
aw_persist_entries_valid(const char *ring, uint64 nbytes, uint64 nids)
{
	uint64		pos = 0;
	uint64		count = 0;

	while (pos < nbytes)
	{
		const AwEntryHeader *hdr = (const AwEntryHeader *) (ring + pos);

		if (nbytes - pos < sizeof(AwEntryHeader) ||
			hdr->length < sizeof(AwEntryHeader) || hdr->length > nbytes - pos ||
			hdr->length != MAXALIGN(hdr->length) || hdr->kind == AW_KIND_PAD ||
			(hdr->state != AW_ENTRY_READY && hdr->state != AW_ENTRY_SKIPPED))
			return false;
		pos += hdr->length;
		count++;
	}
	return count == nids;
}

/*
 * At postmaster start: load the saved queues.  A file that does not fit the
 * current settings is kept aside, untouched, and the server says so.
 */
void
aw_persist_load(void)
{
	FILE	   *f;
	uint32		magic;
	uint64		high_water = 0;
	uint32		nqueues;
	const char *problem = NULL;

	/*
	 * Move the file out of the way before loading it: if it could not be
	 * removed afterwards, a later start must not apply its writes again.
	 */
	if (rename(AW_PERSIST_FILE, AW_PERSIST_LOADING) != 0)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not rename file \"%s\": %m", AW_PERSIST_FILE),
					 errdetail("The queued writes it holds are not loaded.")));
		return;
	}
	f = AllocateFile(AW_PERSIST_LOADING, PG_BINARY_R);
	if (f == NULL)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", AW_PERSIST_LOADING)));
		return;
	}
	if (fread(&magic, sizeof(magic), 1, f) != 1 || magic != AW_PERSIST_MAGIC ||
		fread(&high_water, sizeof(high_water), 1, f) != 1 ||
		fread(&nqueues, sizeof(nqueues), 1, f) != 1)
		problem = "the file is not an asyncwrite queue file";
	else if (nqueues > (uint32) aw_control->max_databases)
		problem = "it holds more databases than asyncwrite.max_databases";

	/* Even when the writes cannot be loaded, ids must never be reused. */
	aw_control->id_high_water = high_water;
	for (uint32 i = 0; problem == NULL && i < nqueues; i++)
	{
		AwQueue    *q = &aw_control->queues[i];
		AwPersistQueue pq;

		if (fread(&pq, sizeof(pq), 1, f) != 1)
			problem = "the file is truncated";
		else if (pq.nbytes > aw_control->capacity)
			problem = "its writes do not fit in asyncwrite.queue_size";
		else if (pq.nbytes > 0 &&
				 fread(aw_queue_ring(q), pq.nbytes, 1, f) != 1)
			problem = "the file is truncated";
		else if (pq.first_id == 0 || pq.next_write_id < pq.first_id ||
				 !aw_persist_entries_valid(aw_queue_ring(q), pq.nbytes,
										   pq.next_write_id - pq.first_id))
			problem = "the file holds a malformed entry";
		else
		{
			q->dboid = pq.dboid;
			q->head = pq.nbytes;
			q->next_write_id = pq.next_write_id;
			high_water = Max(high_water, pq.next_write_id - 1);
			pg_atomic_write_u64(&q->tail, 0);
			pg_atomic_write_u64(&q->applied_write_id, pq.first_id - 1);
			ereport(LOG,
					(errmsg("asyncwrite restored " UINT64_FORMAT " queued writes of database %u",
							pq.next_write_id - pq.first_id, pq.dboid)));
		}
	}
	FreeFile(f);

	if (problem != NULL)
	{
		/* Start empty, but keep the file for a later start or by hand. */
		for (int i = 0; i < aw_control->max_databases; i++)
		{
			AwQueue    *q = &aw_control->queues[i];

			q->dboid = InvalidOid;
			q->head = 0;
			pg_atomic_write_u64(&q->tail, 0);
		}
		ereport(WARNING,
				(errmsg("could not restore the queued asyncwrite writes: %s", problem),
				 errdetail("The file was renamed to \"%s\"; its writes are not applied.",
						   AW_PERSIST_ASIDE),
				 errhint("To apply them, rename the file back to \"%s\" and start the server with settings large enough to hold it.", AW_PERSIST_FILE)));
		(void) durable_rename(AW_PERSIST_LOADING, AW_PERSIST_ASIDE, LOG);
		return;
	}
	aw_control->id_high_water = high_water;
	(void) durable_unlink(AW_PERSIST_LOADING, LOG);
}
