/*-------------------------------------------------------------------------
 *
 * asyncwrite.c
 *		Module entry point: configuration parameters, shared memory hooks,
 *		the launcher registration and the utility hook.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "api.h"
#include "launcher.h"
#include "queue.h"
#include "wal.h"

PG_MODULE_MAGIC;

int			aw_queue_size_kb = 16 * 1024;
int			aw_max_databases = 4;
int			aw_batch_size = 10000;
int			aw_flush_interval_ms = 20;
int			aw_idle_timeout_s = 60;
bool		aw_enabled = true;
bool		aw_transactional = true;
bool		aw_urgent = false;
int			aw_max_retries = 3;
int			aw_retry_delay_ms = 100;
int			aw_on_full = AW_ON_FULL_WAIT;
int			aw_full_timeout_ms = 10000;
int			aw_ddl_flush_timeout_ms = 5000;
int			aw_apply_lock_timeout_ms = 5000;
bool		aw_durable = true;
uint64		aw_layout_seed = 0;

static const struct config_enum_entry aw_on_full_options[] = {
	{"wait", AW_ON_FULL_WAIT, false},
	{"error", AW_ON_FULL_ERROR, false},
	{"sync", AW_ON_FULL_SYNC, false},
	{NULL, 0, false}
};

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

/* shmem_request_hook: reserve the queues and their lock. */
static void
aw_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(aw_queue_shmem_size());
	/* The queues' control lock, and the WAL layer's slot lock. */
	RequestNamedLWLockTranche("asyncwrite", 2);
}

/*
 * shmem_startup_hook: set up the queues; in the postmaster also load the
 * writes saved at the last clean stop and arrange to save them at the next.
 */
static void
aw_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	aw_queue_shmem_init();
	if (!IsUnderPostmaster)
	{
		aw_queue_file_load();
		aw_wal_note_slots();
		on_shmem_exit(aw_queue_file_save, (Datum) 0);
	}
}

/* Define the asyncwrite.* configuration parameters. */
static void
aw_define_gucs(void)
{
	/* Shared memory sizes exist only where the library is preloaded. */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("asyncwrite.queue_size",
								"Size of the shared-memory queue of each database.",
								NULL, &aw_queue_size_kb, 16 * 1024, 64, INT_MAX / 2,
								PGC_POSTMASTER, GUC_UNIT_KB, NULL, NULL, NULL);
		DefineCustomIntVariable("asyncwrite.max_databases",
								"Number of databases that can have writes queued at once.",
								NULL, &aw_max_databases, 4, 1, 1024,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
	}
	DefineCustomIntVariable("asyncwrite.batch_size",
							"Writes applied per transaction; this many queued writes wake the worker at once.",
							NULL, &aw_batch_size, 10000, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("asyncwrite.flush_interval",
							"Longest time a queued write waits before the worker starts applying it.",
							NULL, &aw_flush_interval_ms, 20, 0, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("asyncwrite.worker_idle_timeout",
							"Time after which a worker with nothing queued exits.",
							NULL, &aw_idle_timeout_s, 60, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomBoolVariable("asyncwrite.enabled",
							 "Queue writes; when off, each write function writes synchronously.",
							 NULL, &aw_enabled, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("asyncwrite.transactional",
							 "Queue a write only when the calling transaction commits.",
							 "When off, a write is queued at the call and applied even if the caller rolls back.",
							 &aw_transactional, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("asyncwrite.urgent",
							 "Have the worker apply each write at once, not after asyncwrite.flush_interval or a full batch.",
							 "Writes queued before an urgent write are applied with it, in order; the batch ends with it.",
							 &aw_urgent, false,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("asyncwrite.max_retries",
							"Times a write that hit a transient error is tried again before it is recorded as failed.",
							NULL, &aw_max_retries, 3, 0, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("asyncwrite.retry_delay",
							"Wait before the first retry of a transient error; doubled for each further retry.",
							NULL, &aw_retry_delay_ms, 100, 0, 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomEnumVariable("asyncwrite.on_full",
							 "What a write does when its queue is full: wait, error or sync.",
							 NULL, &aw_on_full, AW_ON_FULL_WAIT, aw_on_full_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("asyncwrite.full_timeout",
							"Longest a write waits for queue space with on_full = wait before it fails.",
							NULL, &aw_full_timeout_ms, 10000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("asyncwrite.ddl_flush_timeout",
							"Longest table DDL waits for the database's queued writes to be applied first.",
							NULL, &aw_ddl_flush_timeout_ms, 5000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("asyncwrite.durable",
							 "Log queued writes to the WAL, so that a write is exactly as durable as its transaction.",
							 "When off, queued writes live in memory only: saved at a clean stop, lost in a crash.",
							 &aw_durable, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("asyncwrite.apply_lock_timeout",
							"Longest a queued write waits for a lock when applied; then it fails as a transient error.",
							"0 waits as long as it takes.",
							&aw_apply_lock_timeout_ms, 5000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	MarkGUCPrefixReserved("asyncwrite");
}

/* Module load: parameters, and with shared_preload_libraries the hooks. */
void
_PG_init(void)
{
	aw_define_gucs();
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = aw_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = aw_shmem_startup;
	aw_register_launcher();
	aw_ddl_install_hook();
}
