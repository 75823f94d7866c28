/*-------------------------------------------------------------------------
 *
 * asyncwrite.h
 *		What every part of asyncwrite needs: the configuration parameters,
 *		the kinds of write and their flags.
 *
 * asyncwrite gives PostgreSQL deferred writes through a per-database
 * shared-memory queue applied by a background worker.  The sources are
 * layered, each file using only its own layer and those below it:
 *
 *	api_*.c		SQL-callable functions and the utility hook (api.h)
 *	submit*.c	route a write: keep until commit, queue now, or write
 *				synchronously; on_full and waiting (submit.h)
 *	worker.c	the apply worker's main loop
 *	apply*.c	apply a batch: runs, plans, COPY-style insert, dead letters,
 *				prepared writes (apply.h)
 *	launcher.c	start and stop apply workers (launcher.h)
 *	queue*.c	the shared-memory rings, their entries and the save file
 *				(queue.h)
 *	convert*.c	jsonb or composite -> row of a target, target checks,
 *				sequence defaults (convert.h)
 *
 * asyncwrite.c holds _PG_init and the variables below.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASYNCWRITE_H
#define ASYNCWRITE_H

#include "postgres.h"

/* Configuration parameters (asyncwrite.c) */
extern int	aw_queue_size_kb;
extern int	aw_max_databases;
extern int	aw_batch_size;
extern int	aw_flush_interval_ms;
extern int	aw_idle_timeout_s;
extern bool aw_enabled;
extern bool aw_transactional;
extern bool aw_urgent;
extern int	aw_max_retries;
extern int	aw_retry_delay_ms;
extern int	aw_on_full;
extern int	aw_full_timeout_ms;
extern int	aw_ddl_flush_timeout_ms;
extern int	aw_apply_lock_timeout_ms;
extern bool aw_durable;

/*
 * The secret key of row-layout fingerprints (convert.c), the same in every
 * process of a server run and across a saved queue (queue.c sets it): no
 * user can choose a table layout whose fingerprint matches another's.
 */
extern uint64 aw_layout_seed;

/* asyncwrite.on_full: what a write does when its queue is full */
typedef enum AwOnFull
{
	AW_ON_FULL_WAIT,			/* wait for space up to full_timeout */
	AW_ON_FULL_ERROR,			/* fail at once */
	AW_ON_FULL_SYNC				/* write synchronously in the caller */
} AwOnFull;

/* Kinds of write */
#define AW_KIND_PAD			0	/* filler up to the end of a ring */
#define AW_KIND_INSERT		1
#define AW_KIND_UPSERT		2	/* INSERT ... ON CONFLICT (keys) DO UPDATE set */
#define AW_KIND_UPDATE		3	/* UPDATE set WHERE keys */
#define AW_KIND_DELETE		4	/* DELETE WHERE keys */
#define AW_KIND_INCREMENT	5	/* add set (deltas) to the row of keys, or
								 * insert */
#define AW_KIND_GAP			6	/* skipped: a range of write ids with no write
								 * left (queue_entry.h) */

/* Flags of a write */
#define AW_FLAG_RETRY		0x0001	/* retry of a dead letter: its id follows */
#define AW_FLAG_DEFERRED	0x0002	/* an insert whose sequence defaults the
									 * worker draws (convert_defaults.c) */
#define AW_FLAG_GIVEN		0x0004	/* the row holds only the columns of its
									 * column sets (a role that may insert
									 * into only some columns): the others
									 * take their defaults when applied */
#define AW_FLAG_DURABLE		0x0008	/* logged to the WAL: recovered after a
									 * crash, never saved to the queue file */
#define AW_FLAG_URGENT		0x0010	/* the worker applies it at once, ending
									 * its batch with it */

/* The name of a write kind, as dead letters record it. */
static inline const char *
aw_kind_name(uint8 kind)
{
	switch (kind)
	{
		case AW_KIND_INSERT:
			return "insert";
		case AW_KIND_UPSERT:
			return "upsert";
		case AW_KIND_UPDATE:
			return "update";
		case AW_KIND_DELETE:
			return "delete";
		case AW_KIND_INCREMENT:
			return "increment";
		default:
			return "unknown";
	}
}

#endif							/* ASYNCWRITE_H */
