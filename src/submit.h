/*-------------------------------------------------------------------------
 *
 * submit.h
 *		The submit layer: what becomes of a converted write in the calling
 *		backend.  submit.c routes it: kept until its transaction commits
 *		(submit_xact.c, submit_prepared.c for PREPARE TRANSACTION), queued
 *		at once, or written synchronously.  submit_queue.c reserves and
 *		publishes queue entries under asyncwrite.on_full, and wakes or
 *		starts the worker; submit_wait.c waits for writes to be applied.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AW_SUBMIT_H
#define AW_SUBMIT_H

#include "convert.h"
#include "queue.h"

#include "fmgr.h"

/* submit.c */
extern void aw_write_spec_make(AwWriteSpec *w, Relation rel, AwTarget *t,
							   Datum row, uint8 kind, const AwColumnSets *cs,
							   uint32 flags);
extern Datum aw_submit_writes(FunctionCallInfo fcinfo, Relation rel, int n,
							  AwWriteSpec *w, bool transactional);
extern Datum aw_submit_write(FunctionCallInfo fcinfo, Relation rel,
							 AwTarget *t, Datum row, uint8 kind,
							 const AwColumnSets *cs, uint32 flags,
							 bool transactional);

/* submit_queue.c */
extern bool aw_submit_now(int n, const AwWriteSpec *w, uint64 *write_id);
extern bool aw_submit_reserve_many(int n, const AwWriteSpec *writes,
								   AwEntryHeader **entries, AwReservation *r);
extern void aw_submit_wake(const AwReservation *r, uint64 urgent_id);
extern void aw_submit_too_large(Size len, int nrows);

/* submit_wait.c */
extern bool aw_wait_applied(AwQueue *q, uint64 target, int64 timeout_ms,
							bool *blocked);
extern void aw_check_worker_blocked(AwQueue *q, const char *what);

/* submit_xact.c */
extern bool aw_xact_keep(const AwWriteSpec *w);
extern int	aw_xact_pending_count(void);
extern void aw_xact_write_now(bool switch_mode);
extern void aw_xact_note_write_id(uint64 write_id);
extern uint64 aw_xact_last_write_id(void);
extern void aw_xact_forget_session(void);

/* submit_prepared.c */
extern void aw_prepared_store(const AwWriteSpec *w);
extern bool aw_prepared_kept_writes(const char *gid);

#endif							/* AW_SUBMIT_H */
