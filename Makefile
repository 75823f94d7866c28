# asyncwrite: deferred writes for PostgreSQL (PGXS build)
MODULE_big = asyncwrite
OBJS = \
	src/asyncwrite.o \
	src/queue.o \
	src/convert.o \
	src/defaults.o \
	src/enqueue.o \
	src/apply.o \
	src/bulk_insert.o \
	src/worker.o \
	src/flush.o \
	src/stats.o \
	src/persist.o \
	src/ddl.o \
	src/retry.o \
	src/xact.o \
	src/prepared.o \
	src/plan.o \
	src/writes.o

EXTENSION = asyncwrite
DATA = sql/asyncwrite--1.0.sql
PGFILEDESC = "asyncwrite - deferred writes through a shared-memory queue"

REGRESS = api convert errors stats security failures ddl transactional writes bulk_apply
REGRESS_OPTS = --inputdir=test --temp-instance=tmp_check --temp-config=$(srcdir)/test/asyncwrite.conf

ISOLATION = concurrent_enqueue
ISOLATION_OPTS = --temp-instance=tmp_check_iso --temp-config=$(srcdir)/test/asyncwrite.conf --inputdir=test

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers $(AW_EXTRA_CFLAGS)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track header dependencies: every object depends on the
# shared header, whose structs describe shared memory.
$(OBJS): src/asyncwrite.h
