# 8 clients x 10,000 writes through pgbench: every write applied, exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('load');
$node->safe_psql('postgres', q{
	CREATE TABLE load_t (id bigserial PRIMARY KEY, client int NOT NULL,
	                     v bigint NOT NULL, at timestamptz DEFAULT now());
	CREATE INDEX ON load_t (client);
});

$node->pgbench(
	'-n -c 8 -j 2 -t 10000 -M prepared',
	0,
	[qr{number of transactions actually processed: 80000/80000}],
	[qr{^$}],
	'8 clients x 10000 asyncwrite.insert calls',
	{
		'001_load_insert' => q{
\set v random(1, 1000000000)
SELECT asyncwrite.insert('load_t', jsonb_build_object('client', :client_id::int, 'v', :v::bigint));
}
	});

is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush returns true');
is($node->safe_psql('postgres', 'SELECT count(*) FROM load_t'), '80000', '80000 rows applied');
is( $node->safe_psql('postgres',
		q{SELECT string_agg(client || ':' || n, ',' ORDER BY client) FROM (SELECT client, count(*) n FROM load_t GROUP BY client) s}),
	'0:10000,1:10000,2:10000,3:10000,4:10000,5:10000,6:10000,7:10000',
	'10000 rows from each client');
is($node->safe_psql('postgres', 'SELECT count(DISTINCT id) FROM load_t'), '80000', 'no row applied twice');
is(aw_stat($node, 'postgres', 'enqueued'), '80000', 'stats: 80000 enqueued');
is(aw_stat($node, 'postgres', 'applied'), '80000', 'stats: 80000 applied');
is(aw_stat($node, 'postgres', 'failed'), '0', 'stats: none failed');
is(aw_stat($node, 'postgres', 'queued'), '0', 'stats: nothing left queued');
is($node->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'no dead letters');

# A small queue forces producers to wait for space: still nothing lost.
$node->append_conf('postgresql.conf', "asyncwrite.queue_size = '256kB'\nasyncwrite.batch_size = 100");
$node->restart;
$node->safe_psql('postgres', 'TRUNCATE load_t');
$node->pgbench(
	'-n -c 4 -j 2 -t 5000',
	0,
	[qr{number of transactions actually processed: 20000/20000}],
	[qr{^$}],
	'4 clients x 5000 writes through a 256kB queue',
	{
		'001_load_small' => q{
SELECT asyncwrite.insert('load_t', jsonb_build_object('client', :client_id::int, 'v', repeat('9', 15)::bigint));
}
	});
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush after the small-queue run');
is($node->safe_psql('postgres', 'SELECT count(*) FROM load_t'), '20000', '20000 rows applied through a small queue');
ok(aw_stat($node, 'postgres', 'batches') >= 200, 'batches of at most 100 rows');

# Many sessions committing several large writes at once into that small
# queue: each transaction's writes are reserved together, so none waits for
# room while holding part of it, and all commit.
$node->safe_psql('postgres', 'TRUNCATE load_t');
$node->safe_psql('postgres', 'ALTER TABLE load_t ADD COLUMN blob text');
$node->pgbench(
	'-n -c 8 -j 2 -t 100',
	0,
	[qr{number of transactions actually processed: 800/800}],
	[qr{^$}],
	'8 clients committing 10 writes of 5kB each through a 256kB queue',
	{
		'001_load_multi' => q{
BEGIN;
SELECT asyncwrite.insert('load_t', jsonb_build_object('client', :client_id::int, 'v', g, 'blob', repeat('b', 5000))) FROM generate_series(1, 10) g;
COMMIT;
}
	});
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush after the multi-write run');
is($node->safe_psql('postgres', 'SELECT count(*) FROM load_t'), '8000', '8000 rows from 800 transactions');

$node->stop;
done_testing();
