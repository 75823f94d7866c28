/*-------------------------------------------------------------------------
 *
 * queue_entry.h
 *		The layout of one write, as the queue layer stores it: in a ring,
 *		and in backend memory for writes kept until commit, prepared
 *		writes and synchronous writes, which the apply path reads alike.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AW_QUEUE_ENTRY_H
#define AW_QUEUE_ENTRY_H

#include "asyncwrite.h"

#include "access/attnum.h"
#include "access/htup_details.h"
#include "datatype/timestamp.h"

/*
 * Ring entry header.  Every entry in a queue's ring starts with one, is
 * MAXALIGNed, and never wraps around the end of the ring.  Write ids are not
 * stored: they are consecutive in ring order (padding excluded), so they are
 * derived from the queue's applied mark.  With the row's own tuple header,
 * these 24 bytes are all a queued row costs beyond its data.
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

StaticAssertDecl(sizeof(AwEntryHeader) == 24, "asyncwrite entry header grew");

#define AW_ENTRY_RESERVED	0	/* space taken, payload being copied */
#define AW_ENTRY_READY		1	/* published: the worker may apply it */
#define AW_ENTRY_SKIPPED	2	/* consumes its write id, applies nothing */

/*
 * A gap entry (kind AW_KIND_GAP, state skipped, no payload) consumes a range
 * of write ids at once: those of writes that a recovery from the WAL does
 * not bring back (applied, rolled back, or not durable), and those of
 * durable writes in the queue file.  The count is kept in relid and roleid.
 */
static inline uint64
aw_entry_gap_count(const AwEntryHeader *hdr)
{
	return ((uint64) hdr->relid << 32) | hdr->roleid;
}

/* Make hdr a gap entry of count write ids. */
static inline void
aw_entry_make_gap(AwEntryHeader *hdr, uint64 count)
{
	memset(hdr, 0, sizeof(AwEntryHeader));
	hdr->length = sizeof(AwEntryHeader);
	hdr->kind = AW_KIND_GAP;
	hdr->state = AW_ENTRY_SKIPPED;
	hdr->relid = (Oid) (count >> 32);
	hdr->roleid = (Oid) (count & 0xFFFFFFFF);
}

/* The write ids an entry consumes: 1, or a gap's count. */
static inline uint64
aw_entry_ids(const AwEntryHeader *hdr)
{
	return hdr->kind == AW_KIND_GAP ? aw_entry_gap_count(hdr) : 1;
}

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

/* The time of an aw_clock_ms() value seen from now, never later than it. */
static inline TimestampTz
aw_clock_to_timestamp(uint32 ms, TimestampTz now)
{
	return (now / 1000 - (TimestampTz) ((uint32) (aw_clock_ms(now) - ms))) * 1000;
}

/*
 * The columns a write other than an insert works on: its key columns (a
 * unique key of the target) and the columns it sets (upsert, update) or adds
 * to (increment); for an insert of AW_FLAG_GIVEN, no keys and the columns it
 * gives.  Stored after the row in the entry.
 */
typedef struct AwColumnSets
{
	int16		nkeys;
	int16		nset;
	AttrNumber	attnums[FLEXIBLE_ARRAY_MEMBER]; /* keys, then set */
} AwColumnSets;

#define AW_COLSETS_SIZE(nkeys, nset) \
	(offsetof(AwColumnSets, attnums) + sizeof(AttrNumber) * ((nkeys) + (nset)))

/* Column sets of these keys and set columns, palloc'd. */
static inline AwColumnSets *
aw_colsets_make(const AttrNumber *keys, int nkeys, const AttrNumber *set,
				int nset)
{
	AwColumnSets *cs = palloc0(AW_COLSETS_SIZE(nkeys, nset));

	cs->nkeys = (int16) nkeys;
	cs->nset = (int16) nset;
	if (nkeys > 0)
		memcpy(cs->attnums, keys, sizeof(AttrNumber) * nkeys);
	if (nset > 0)
		memcpy(cs->attnums + nkeys, set, sizeof(AttrNumber) * nset);
	return cs;
}

/*
 * An entry's payload: the row, a composite datum of the target's row type;
 * then, MAXALIGNed, the column sets (kinds other than insert); then the
 * dead letter id (retries).
 */
#define AW_ENTRY_PAYLOAD(hdr)	((char *) (hdr) + sizeof(AwEntryHeader))
#define AW_ENTRY_DATUM_LEN(hdr) (VARSIZE(AW_ENTRY_PAYLOAD(hdr)))
/* The target's column count when queued: the row's own. */
#define AW_ENTRY_NATTS(hdr) \
	HeapTupleHeaderGetNatts((HeapTupleHeader) AW_ENTRY_PAYLOAD(hdr))

/*
 * The column sets of an entry, or NULL for an insert (unless its row holds
 * only the columns given: AW_FLAG_GIVEN, with no key columns).
 */
static inline AwColumnSets *
aw_entry_colsets(const AwEntryHeader *hdr)
{
	if (hdr->kind == AW_KIND_INSERT && !(hdr->flags & AW_FLAG_GIVEN))
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

/* Dead letter id of a retry entry. */
#define AW_ENTRY_RETRY_ID(hdr) \
	(*(int64 *) (AW_ENTRY_PAYLOAD(hdr) + MAXALIGN(AW_ENTRY_DATUM_LEN(hdr)) + \
				 aw_entry_colsets_size(hdr)))

/* One write as its entry's fields and bytes, before it is laid out. */
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

/* Bytes an entry with this payload and extra takes. */
static inline Size
aw_entry_size(Size payload_len, Size extra_len)
{
	return MAXALIGN(sizeof(AwEntryHeader) + MAXALIGN(payload_len) + extra_len);
}

/*
 * Fill an entry's header (state reserved) and copy its payload and extra
 * bytes: the one layout of a write, in a ring or in backend memory.
 */
static inline void
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

/* A write laid out as a published entry in backend memory. */
static inline AwEntryHeader *
aw_entry_make(const AwWriteSpec *w, TimestampTz now)
{
	AwEntryHeader *hdr = palloc0(aw_entry_size(w->payload_len, w->extra_len));

	aw_entry_fill(hdr, w, now);
	hdr->state = AW_ENTRY_READY;
	return hdr;
}

#endif							/* AW_QUEUE_ENTRY_H */
