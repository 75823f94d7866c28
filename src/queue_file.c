/*-------------------------------------------------------------------------
 *
 * queue_file.c
 *		Keep queued writes across a clean stop: when the postmaster exits,
 *		whatever is still queued is written to a file under the data
 *		directory, and loaded back into the queues at the next start (as
 *		pg_stat_statements keeps its statistics).
 *
 * A crash does not run this path: what was queued then is lost, but for
 * durable writes (asyncwrite.durable), which come back from the WAL.  An
 * immediate shutdown does, but its workers were killed without cleaning up,
 * so a batch they were applying is left out (it may have committed).
 * Durable writes are saved as gaps (their ids only): the WAL brings back
 * those whose transactions committed, and nothing comes back from both.
 *
 * The file names the cluster (its system identifier) and the PostgreSQL
 * major version that wrote it, and is loaded only by that cluster starting
 * as a primary: a standby or a server recovering to a target started from
 * a copy of the data directory would apply the writes a second time (the
 * primary applies them), and a file of another major or cluster may not
 * fit.  Such a file is kept aside, untouched, with a WARNING.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include <sys/stat.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/fd.h"

#include "queue.h"

#define AW_PERSIST_FILE		"asyncwrite.queue"
#define AW_PERSIST_TMP		"asyncwrite.queue.tmp"
#define AW_PERSIST_ASIDE	"asyncwrite.queue.unloaded"
#define AW_PERSIST_LOADING	"asyncwrite.queue.loading"
#define AW_PERSIST_MAGIC	0x41575133	/* "AWQ3": 24-byte entry headers, the
										 * header below */
#define AW_PERSIST_MAGIC_V2	0x41575132	/* "AWQ2": no cluster header */

/* What the file says of itself after its magic number. */
typedef struct AwPersistHeader
{
	uint32		pg_major;		/* PG_VERSION_NUM / 10000 of the writer */
	uint32		padding;
	uint64		system_identifier;	/* the cluster that wrote it */
	uint64		high_water;		/* every write id ever issued is below */
	uint64		layout_seed;	/* the key of its rows' fingerprints */
	uint32		nqueues;
} AwPersistHeader;

/* What the file says of one queue before its entries. */
typedef struct AwPersistQueue
{
	Oid			dboid;
	uint64		first_id;		/* id of the first entry saved */
	uint64		next_write_id;
	uint64		nbytes;			/* bytes of entries that follow */
} AwPersistQueue;

/*
 * Write out the entries of a walk, up to the first one still being
 * committed (with f NULL, only count them).  Returns the bytes the entries
 * take, and their number in *nentries.
 */
static uint64
aw_queue_file_entries(AwQueueIter *it, FILE *f, uint64 *nentries)
{
	AwEntryHeader *hdr;
	uint64		nbytes = 0;

	*nentries = 0;
	while ((hdr = aw_queue_iter_next(it)) != NULL)
	{
		if (hdr->flags & AW_FLAG_DURABLE)
		{
			/*
			 * A durable write comes back from the WAL only, and only if its
			 * transaction committed: here it keeps just its id.
			 */
			AwEntryHeader gap;

			aw_entry_make_gap(&gap, 1);
			if (f != NULL)
				fwrite(&gap, sizeof(gap), 1, f);
			nbytes += sizeof(gap);
		}
		else
		{
			if (f != NULL)
			{
				AwEntryHeader copy = *hdr;

				fwrite(&copy, sizeof(copy), 1, f);
				fwrite(AW_ENTRY_PAYLOAD(hdr), hdr->length - sizeof(AwEntryHeader), 1, f);
			}
			nbytes += hdr->length;
		}
		*nentries += aw_entry_ids(hdr);
	}
	return nbytes;
}

/* on_shmem_exit in the postmaster: save every queue's pending writes. */
void
aw_queue_file_save(int code, Datum arg)
{
	FILE	   *f;
	uint32		magic = AW_PERSIST_MAGIC;
	AwPersistHeader h;
	uint32		nqueues = 0;
	AwQueueIter it;
	Oid			dboid;
	bool		applying;
	uint64		in_flight;

	/* After a crash the queues may be half-written: keep nothing. */
	if (code != 0 || !aw_queue_loaded())
		return;

	for (int i = 0; i < aw_queue_count(); i++)
		if (aw_queue_iter_begin_stopped(aw_queue_at(i), &it, &dboid,
										&applying, &in_flight))
			nqueues++;
	memset(&h, 0, sizeof(h));
	h.pg_major = PG_VERSION_NUM / 10000;
	h.system_identifier = GetSystemIdentifier();
	h.high_water = aw_queue_id_high_water();
	h.layout_seed = aw_queue_layout_seed();
	h.nqueues = nqueues;

	f = AllocateFile(AW_PERSIST_TMP, PG_BINARY_W);
	if (f == NULL)
		goto error;
	fwrite(&magic, sizeof(magic), 1, f);
	fwrite(&h, sizeof(h), 1, f);
	for (int i = 0; i < aw_queue_count(); i++)
	{
		AwQueue    *q = aw_queue_at(i);
		AwPersistQueue pq;
		uint64		nentries;

		if (!aw_queue_iter_begin_stopped(q, &it, &dboid, &applying,
										 &in_flight))
			continue;

		/*
		 * A worker stopped in the middle of a batch (immediate shutdown): its
		 * transaction may have committed.  Rather than apply those writes
		 * twice, the walk keeps only the ones after it.
		 */
		if (applying)
			ereport(LOG,
					(errmsg("asyncwrite cannot tell whether " UINT64_FORMAT " writes of database %u were applied; they are not saved",
							in_flight, dboid),
					 errdetail("The apply worker was stopped while applying them.")));
		pq.dboid = dboid;
		pq.first_id = it.write_id + 1;
		pq.nbytes = aw_queue_file_entries(&it, NULL, &nentries);
		/* Ids stay consecutive: a save cut short ends the ids there too. */
		pq.next_write_id = pq.first_id + nentries;
		fwrite(&pq, sizeof(pq), 1, f);

		/*
		 * An entry still reserved (its transaction was committing when the
		 * server stopped at once) may not even have its length yet: what
		 * follows it cannot be walked, so the save stops there.
		 */
		(void) aw_queue_iter_begin_stopped(q, &it, &dboid, &applying,
										   &in_flight);
		aw_queue_file_entries(&it, f, &nentries);
		if (it.pos < it.head)
			ereport(LOG,
					(errmsg("asyncwrite did not save the writes of database %u queued after one still being committed",
							dboid)));
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

/* Read nbytes of saved entries into a queue's ring; false if truncated. */
static bool
aw_queue_file_read_entries(FILE *f, AwQueue *q, uint64 nbytes)
{
	char		buf[65536];

	for (uint64 done = 0; done < nbytes;)
	{
		Size		n = Min(sizeof(buf), nbytes - done);

		if (fread(buf, n, 1, f) != 1)
			return false;
		aw_queue_restore_bytes(q, done, buf, n);
		done += n;
	}
	return true;
}

/*
 * Why a saved file must not be loaded by this server, or NULL: it was
 * written by another cluster or PostgreSQL major version, or this server
 * starts as a standby or recovers to a target (a copy of the data
 * directory: the primary it was copied from applies the writes).
 */
static const char *
aw_queue_file_foreign(const AwPersistHeader *h)
{
	struct stat st;

	if (h->pg_major != PG_VERSION_NUM / 10000)
		return psprintf("it was written by PostgreSQL %u, this server is %d",
						h->pg_major, PG_VERSION_NUM / 10000);
	if (h->system_identifier != GetSystemIdentifier())
		return psprintf("it was written by the cluster with system identifier " UINT64_FORMAT ", not this one (" UINT64_FORMAT ")",
						h->system_identifier, GetSystemIdentifier());
	if (stat(STANDBY_SIGNAL_FILE, &st) == 0)
		return "the server starts as a standby (standby.signal): the primary applies these writes";
	if (stat(RECOVERY_SIGNAL_FILE, &st) == 0)
		return "the server starts in targeted recovery (recovery.signal), from a copy of a data directory";
	return NULL;
}

/*
 * At postmaster start: load the saved queues.  A file that does not fit the
 * current settings, or must not be loaded here (aw_queue_file_foreign), is
 * kept aside, untouched, and the server says so.
 */
void
aw_queue_file_load(void)
{
	FILE	   *f;
	uint32		magic;
	AwPersistHeader h;
	uint32		nqueues = 0;
	const char *problem = NULL;
	bool		ours = false;

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
	if (fread(&magic, sizeof(magic), 1, f) != 1)
		problem = "the file is not an asyncwrite queue file";
	else if (magic == AW_PERSIST_MAGIC_V2)
		problem = "it was written by an earlier asyncwrite, without the cluster's identity";
	else if (magic != AW_PERSIST_MAGIC || fread(&h, sizeof(h), 1, f) != 1)
		problem = "the file is not an asyncwrite queue file";
	else if ((problem = aw_queue_file_foreign(&h)) == NULL)
	{
		ours = true;
		nqueues = h.nqueues;
		aw_queue_set_layout_seed(h.layout_seed);
		if (nqueues > (uint32) aw_queue_count())
			problem = "it holds more databases than asyncwrite.max_databases";
	}

	/* Even when this cluster's writes cannot be loaded, ids are not reused. */
	if (ours)
	{
		aw_queue_raise_id_high_water(h.high_water);
		aw_queue_ids_cover(h.high_water);
	}
	for (uint32 i = 0; problem == NULL && i < nqueues; i++)
	{
		AwQueue    *q = aw_queue_at((int) i);
		AwPersistQueue pq;

		if (fread(&pq, sizeof(pq), 1, f) != 1)
			problem = "the file is truncated";
		else if (pq.nbytes > aw_queue_capacity())
			problem = "its writes do not fit in asyncwrite.queue_size";
		else if (!aw_queue_file_read_entries(f, q, pq.nbytes))
			problem = "the file is truncated";
		else if (!aw_queue_restore(q, pq.dboid, pq.nbytes, pq.first_id,
								   pq.next_write_id))
			problem = "the file holds a malformed entry";
		else
		{
			ereport(LOG,
					(errmsg("asyncwrite restored " UINT64_FORMAT " queued writes of database %u",
							pq.next_write_id - pq.first_id, pq.dboid)));
		}
	}
	FreeFile(f);

	if (problem != NULL)
	{
		/* Start empty, but keep the file for a later start or by hand. */
		aw_queue_unbind_all();
		ereport(WARNING,
				(errmsg("could not restore the queued asyncwrite writes: %s", problem),
				 errdetail("The file was renamed to \"%s\"; its writes are not applied.",
						   AW_PERSIST_ASIDE),
				 errhint("If they were not applied elsewhere, rename the file back to \"%s\" for a start of this cluster's primary, with settings large enough to hold them.", AW_PERSIST_FILE)));
		(void) durable_rename(AW_PERSIST_LOADING, AW_PERSIST_ASIDE, LOG);
		return;
	}
	(void) durable_unlink(AW_PERSIST_LOADING, LOG);
}
