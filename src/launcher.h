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

#include <signal.h>

/* Whether this process is an apply worker. */
extern bool aw_is_worker;

/* Set in an apply worker by SIGTERM: finish what is queued, then exit. */
extern volatile sig_atomic_t aw_got_sigterm;

/*
 * The worker's entry point, which launcher.c registers by name and
 * worker.c defines.
 */
#define AW_WORKER_MAIN	"aw_worker_main"
extern PGDLLEXPORT void aw_worker_main(Datum arg);

extern void aw_worker_ensure(AwQueue *q);
extern bool aw_worker_stop(AwQueue *q, int timeout_ms);
extern void aw_register_launcher(void);
extern PGDLLEXPORT void aw_launcher_main(Datum arg);

/* The worker's side of a stop, called in the worker itself */
extern void aw_worker_attach(AwQueue *q);
extern void aw_worker_sigterm(SIGNAL_ARGS);
extern void aw_worker_check_exit(void);

#endif							/* AW_LAUNCHER_H */
