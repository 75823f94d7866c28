# Hot counters: 8 clients x 1,000 increments of 5 keys give the exact sums,
# and 8 clients upserting the same keys end with a value one of them wrote.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('counters');
$node->safe_psql('postgres', q{
	CREATE TABLE counters (name text PRIMARY KEY, hits bigint NOT NULL DEFAULT 0, amount numeric NOT NULL DEFAULT 0);
	CREATE TABLE latest (k int PRIMARY KEY, client int, seq int);
});

$node->pgbench(
	'-n -c 8 -j 2 -t 1000 -M prepared',
	0,
	[qr{number of transactions actually processed: 8000/8000}],
	[qr{^$}],
	'8 clients x 1000 increments of 5 keys',
	{
		'008_increment' => q{
\set k random(0, 4)
SELECT asyncwrite.increment('counters', jsonb_build_object('name', 'c' || :k), jsonb_build_object('hits', 1, 'amount', 0.25));
}
	});
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush');
is($node->safe_psql('postgres', 'SELECT sum(hits) || \' \' || sum(amount) || \' \' || count(*) FROM counters'),
	'8000 2000.00 5', 'exact sums over 5 counters');
is($node->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'no dead letters');
ok(aw_stat($node, 'postgres', 'batches') < 8000, 'fewer batches than increments (they were applied together)');

$node->pgbench(
	'-n -c 8 -j 2 -t 500 -M prepared',
	0,
	[qr{number of transactions actually processed: 4000/4000}],
	[qr{^$}],
	'8 clients x 500 upserts of 3 keys',
	{
		'008_upsert' => q{
\set k random(0, 2)
SELECT asyncwrite.upsert('latest', jsonb_build_object('k', :k::int, 'client', :client_id::int, 'seq', 1));
}
	});
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush upserts');
is($node->safe_psql('postgres', 'SELECT count(*) || \' \' || bool_and(client BETWEEN 0 AND 7) FROM latest'), '3 true',
	'one row per key, written by one of the clients');
is($node->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'no dead letters');

$node->stop;
done_testing();
