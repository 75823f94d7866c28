/*-------------------------------------------------------------------------
 *
 * apply.h
 *		The apply layer: what the worker (and a caller writing
 *		synchronously) does with queued writes.  apply.c applies a batch run
 *		by run, isolating failures; apply_plan.c holds the statement of each
 *		kind of run, apply_bulk.c the COPY-style insert, apply_deadletter.c
 *		the record of failed writes, apply_prepared.c the writes of
 *		committed prepared transactions, apply_role.c the identity writes
 *		are applied with.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AW_APPLY_H
#define AW_APPLY_H

#include "convert.h"
#include "queue.h"

#include "executor/spi.h"

/* One write of a batch. */
typedef struct AwApplyRow
{
	AwEntryHeader *hdr;
	uint64		write_id;
	uint64		end_pos;		/* ring position just after the entry */
} AwApplyRow;

/* apply.c */
#define AW_BATCH_NO_EXTENSION	(-2)	/* asyncwrite is not installed */
#define AW_BATCH_CLOSED			(-3)	/* the database allows no connections */
#define AW_BATCH_RETRY			(-4)	/* could not tell: try again later */
extern int	aw_apply_batch(AwQueue *q, AwApplyRow *rows, int nrows,
						   uint64 end_pos, uint64 last_id,
						   XLogRecPtr replay_from,
						   uint64 *napplied, uint64 *nfailed);
extern void aw_apply_in_xact(AwApplyRow *rows, int nrows, int conn_try,
							 uint64 *napplied, uint64 *nfailed);
extern void aw_apply_now(AwEntryHeader *hdr);
extern bool aw_error_is_connection(int sqlerrcode);
extern bool aw_conn_retry_due(ErrorData *edata, int conn_try);
extern void aw_conn_retry_wait(const char *what, ErrorData *edata,
							   int conn_try);

/* apply_role.c: the identity a run is applied with */
typedef struct AwWriterState
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} AwWriterState;
extern void aw_role_note_startup_defaults(void);
extern void aw_role_reload_defaults(void);
extern void aw_become_writer(Oid roleid, AwWriterState *s);
extern void aw_end_writer(AwWriterState *s);
extern void aw_writer_reset(void);

/* apply_plan.c */
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
extern void aw_plan_coalesce(Relation rel, AwApplyRow *rows, int n, bool *keep,
							 int *first);

/* apply_bulk.c */
extern bool aw_bulk_insert_usable(Relation rel);
extern void aw_bulk_insert(Relation rel, AwApplyRow *rows, int n);

/* apply_deadletter.c */
extern bool aw_dead_letter_remove(int64 id);
extern int64 aw_dead_letter_find(uint64 write_id);
extern void aw_dead_letter_record(AwApplyRow *row, ErrorData *edata,
								  int attempts);

/* apply_mark.c */
extern bool aw_mark_exists(void);
extern uint64 aw_mark_peek(void);
extern bool aw_mark_read(uint64 *applied_id, XLogRecPtr *replay_from);
extern void aw_mark_write(uint64 applied_id, XLogRecPtr replay_from);

/* apply_prepared.c */
extern uint64 aw_prepared_sweep(void);

#endif							/* AW_APPLY_H */
