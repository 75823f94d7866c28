// asyncwrite from Node.js with node-pg.
//
//   node example.js "postgresql://user@host:5432/dbname"   # or DATABASE_URL
//
// Writes to app_events and app_settings (test/apps/schema.sql); exits
// non-zero if a row it queued is not there once asyncwrite says it is
// applied.  node-pg sends a JavaScript object as its JSON text, and
// returns a bigint (the write id) as a string.
'use strict';
const crypto = require('crypto');
const { Client } = require('pg');

const SOURCE = 'node-pg';

function check(ok, what) {
  if (!ok) throw new Error(`${SOURCE}: ${what}`);
}

async function events(client, kind, run) {
  const { rows } = await client.query(
    "SELECT count(*)::int AS n FROM app_events WHERE source = $1 AND kind = $2 AND payload->>'run' = $3",
    [SOURCE, kind, run]);
  return rows[0].n;
}

async function main() {
  const client = new Client({ connectionString: process.argv[2] || process.env.DATABASE_URL });
  const run = crypto.randomUUID();
  await client.connect();
  try {
    // Outside BEGIN each query commits on its own.  Queued at the call:
    // the id comes back at once.
    let { rows: [{ id }] } = await client.query(
      "SELECT asyncwrite.insert('app_events', $1, transactional => false) AS id",
      [{ source: SOURCE, kind: 'autocommit', payload: { run, n: 1, tags: ['a', 'b'] } }]);
    check(id !== null, 'a non-transactional write returned no id');
    // Wait for that write (from any connection to this database).
    const { rows: [{ applied }] } = await client.query('SELECT asyncwrite.wait($1) AS applied', [id]);
    check(applied === true, `wait(${id}) returned ${applied}`);
    check(await events(client, 'autocommit', run) === 1, `write ${id} is not in app_events`);
    console.log(`autocommit: write ${id} applied`);

    // In a transaction (the default, transactional => true) the write is
    // queued when the transaction commits: the call returns NULL.
    await client.query('BEGIN');
    ({ rows: [{ id }] } = await client.query(
      "SELECT asyncwrite.insert('app_events', $1) AS id",
      [{ source: SOURCE, kind: 'transaction', payload: { run, n: 2 } }]));
    check(id === null, `a transactional write returned ${id}, not NULL`);
    await client.query('COMMIT');
    // Committed: flush() waits for every write queued in the database
    // before it.
    await client.query('SELECT asyncwrite.flush()');
    check(await events(client, 'transaction', run) === 1, 'the committed write is not in app_events');
    console.log('transaction: committed, flushed');

    // An upsert, the object passed as is.
    ({ rows: [{ id }] } = await client.query(
      "SELECT asyncwrite.upsert('app_settings', $1, transactional => false) AS id",
      [{ name: SOURCE, value: { run, theme: 'dark' } }]));
    await client.query('SELECT asyncwrite.wait($1)', [id]);
    const { rows } = await client.query("SELECT value->>'run' AS run FROM app_settings WHERE name = $1", [SOURCE]);
    check(rows.length === 1 && rows[0].run === run, `upsert ${id}: app_settings has ${JSON.stringify(rows)}`);
    console.log(`upsert: write ${id} applied`);
  } finally {
    await client.end();
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exitCode = 1;
});
