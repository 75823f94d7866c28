"""asyncwrite from Python with psycopg 3.

    python3 example.py "postgresql://user@host:5432/dbname"   # or DATABASE_URL

Writes to app_events and app_settings (test/apps/schema.sql).  Exits non-zero
if a row it queued is not there once asyncwrite says it is applied.
"""
import os
import sys
import uuid

import psycopg
from psycopg.types.json import Json, Jsonb

SOURCE = "psycopg"


def check(ok, what):
    if not ok:
        sys.exit(f"{SOURCE}: {what}")


def events(conn, kind, run):
    return conn.execute(
        "SELECT count(*) FROM app_events"
        " WHERE source = %s AND kind = %s AND payload->>'run' = %s",
        [SOURCE, kind, run]).fetchone()[0]


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ["DATABASE_URL"]
    run = str(uuid.uuid4())

    # Autocommit: each statement commits on its own.  psycopg's default is a
    # transaction left open until commit(), in which every write waits for
    # that commit.
    with psycopg.connect(url, autocommit=True) as conn:
        # Queued at the call: the id comes back at once.  Jsonb() sends the
        # dict as jsonb.
        row = {"source": SOURCE, "kind": "autocommit",
               "payload": {"run": run, "n": 1, "tags": ["a", "b"]}}
        write_id = conn.execute(
            "SELECT asyncwrite.insert('app_events', %s, transactional => false)",
            [Jsonb(row)]).fetchone()[0]
        check(write_id is not None, "a non-transactional write returned no id")
        # Wait for that write (from any connection to this database).
        applied = conn.execute("SELECT asyncwrite.wait(%s)", [write_id]).fetchone()[0]
        check(applied is True, f"wait({write_id}) returned {applied}")
        check(events(conn, "autocommit", run) == 1, f"write {write_id} is not in app_events")
        print(f"autocommit: write {write_id} applied")

        # In a transaction (the default, transactional => true) the write is
        # queued when the transaction commits: the call returns NULL.
        with conn.transaction():
            ret = conn.execute(
                "SELECT asyncwrite.insert('app_events', %s)",
                [Jsonb({"source": SOURCE, "kind": "transaction",
                        "payload": {"run": run, "n": 2}})]).fetchone()[0]
            check(ret is None, f"a transactional write returned {ret}, not NULL")
        # Committed: flush() waits for every write queued in the database
        # before it.
        conn.execute("SELECT asyncwrite.flush()")
        check(events(conn, "transaction", run) == 1, "the committed write is not in app_events")
        print("transaction: committed, flushed")

        # An upsert with the value as plain json (Json()).
        write_id = conn.execute(
            "SELECT asyncwrite.upsert('app_settings', %s, transactional => false)",
            [Json({"name": SOURCE, "value": {"run": run, "theme": "dark"}})]).fetchone()[0]
        conn.execute("SELECT asyncwrite.wait(%s)", [write_id])
        got = conn.execute("SELECT value->>'run' FROM app_settings WHERE name = %s",
                           [SOURCE]).fetchone()
        check(got == (run,), f"upsert {write_id}: app_settings has {got}")
        print(f"upsert: write {write_id} applied")


if __name__ == "__main__":
    main()
