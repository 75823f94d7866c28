# asyncwrite: deferred writes for PostgreSQL (PGXS build)
MODULE_big = asyncwrite
OBJS = \
	src/asyncwrite.o \
	src/api_control.o \
	src/api_ddl.o \
	src/api_insert.o \
	src/api_keyed.o \
	src/api_retry.o \
	src/submit.o \
	src/submit_prepared.o \
	src/submit_queue.o \
	src/submit_wait.o \
	src/submit_xact.o \
	src/worker.o \
	src/apply.o \
	src/apply_bulk.o \
	src/apply_deadletter.o \
	src/apply_mark.o \
	src/apply_plan.o \
	src/apply_prepared.o \
	src/apply_role.o \
	src/launcher.o \
	src/wal_log.o \
	src/wal_recover.o \
	src/queue.o \
	src/queue_file.o \
	src/convert.o \
	src/convert_defaults.o \
	src/convert_target.o

EXTENSION = asyncwrite
EXTVERSION = 1.1
# The current version's install script is built from sql/asyncwrite.sql;
# earlier versions' scripts stay for their upgrade paths.
DATA = sql/asyncwrite--1.0.sql $(wildcard sql/asyncwrite--*--*.sql)
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
PGFILEDESC = "asyncwrite - deferred writes through a shared-memory queue"

REGRESS = api convert errors stats security as_role semantics failures ddl transactional writes bulk_apply apps
REGRESS_OPTS = --inputdir=test --temp-instance=tmp_check --temp-config=$(srcdir)/test/asyncwrite.conf

ISOLATION = concurrent_enqueue
ISOLATION_OPTS = --temp-instance=tmp_check_iso --temp-config=$(srcdir)/test/asyncwrite.conf --inputdir=test

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers $(AW_EXTRA_CFLAGS)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# PGXS does not track header dependencies: every object depends on the
# headers, whose structs describe shared memory and queue entries.
$(OBJS): $(wildcard src/*.h)

# The archive PGXN takes: the committed tree, under asyncwrite-X.Y/.
dist:
	git archive --format zip --prefix=$(EXTENSION)-$(EXTVERSION)/ -o $(EXTENSION)-$(EXTVERSION).zip HEAD

.PHONY: dist
