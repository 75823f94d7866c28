/*-------------------------------------------------------------------------
 *
 * launcher.h
 *		Starting and stopping apply workers (launcher.c): on demand from
 *		the backends that queue or wait, around database DDL, and at server
 *		start for queues restored from the save file.  Below the submit and
 *		SQL layers, beside the queue layer: it knows nothing of the worker's
 *		main loop.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AW_LAUNCHER_H
#define AW_LAUNCHER_H

#include "queue.h"

/* Whether this process is an apply worker. */
extern bool aw_is_worker;

/*
 * The worker's entry point, which launcher.c registers by name and
 * worker.c defines.
 */
#define AW_WORKER_MAIN	"aw_worker_main"
extern PGDLLEXPORT void aw_worker_main(Datum arg);

extern AwQueue *aw_launcher_bind(Oid dboid);
extern void aw_worker_ensure(AwQueue *q);
extern bool aw_worker_stop(AwQueue *q, int timeout_ms);
extern void aw_register_launcher(void);
extern PGDLLEXPORT void aw_launcher_main(Datum arg);

/* In the worker itself */
extern void aw_worker_attach(AwQueue *q);

#endif							/* AW_LAUNCHER_H */
