# A transaction waiting inside COMMIT (here for a synchronous standby that
# is not there) holds its reserved entries at the queue's head, and every
# write behind them waits: asyncwrite.stats names that backend in
# held_by_pid.  Also: the 1.0 -> 1.1 update adds that column, and the 1.1
# library serves a 1.0 install's stats unchanged.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('held', "synchronous_commit = local\n", allows_streaming => 1);
$node->safe_psql('postgres', 'CREATE TABLE t (id int); CREATE TABLE other (id int)');

# Updating from 1.0.
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', q{CREATE EXTENSION asyncwrite VERSION '1.0'; CREATE TABLE t (id int);
	SELECT asyncwrite.insert('t', '{"id": 1}'); SELECT asyncwrite.flush()});
is($node->safe_psql('old', q{SELECT applied, queued FROM asyncwrite.stats WHERE database = 'old'}), '1|0',
	'the stats of a 1.0 install work with the 1.1 library');
$node->safe_psql('old', 'ALTER EXTENSION asyncwrite UPDATE');
is($node->safe_psql('old', q{SELECT extversion FROM pg_extension WHERE extname = 'asyncwrite'}), '1.1',
	'ALTER EXTENSION asyncwrite UPDATE goes to 1.1');
is($node->safe_psql('old', q{SELECT applied, held_by_pid IS NULL FROM asyncwrite.stats WHERE database = 'old'}),
	'1|t', 'after the update, stats has held_by_pid');

# A committing transaction waits for a synchronous standby that is not there.
$node->safe_psql('postgres', q{ALTER SYSTEM SET synchronous_standby_names = 'nobody'; SELECT pg_reload_conf()});
my $holder = $node->background_psql('postgres');
my $holder_pid = $holder->query_safe('SELECT pg_backend_pid()');
$holder->query_until(qr/committing/, q{
	SET synchronous_commit = remote_write;
	BEGIN;
	INSERT INTO other VALUES (1);
	SELECT asyncwrite.insert('t', '{"id": 1}');
	\echo committing
	COMMIT;
});
ok($node->poll_query_until('postgres',
		"SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE pid = $holder_pid"),
	'the transaction waits inside COMMIT');
$node->safe_psql('postgres', q{SELECT asyncwrite.insert('t', '{"id": 2}', transactional => false)});
is($node->safe_psql('postgres', q{SELECT asyncwrite.flush('1 s')}), 'f', 'a write queued behind it is not applied');
is($node->safe_psql('postgres', q{SELECT held_by_pid, queued FROM asyncwrite.stats WHERE database = 'postgres'}),
	"$holder_pid|2", 'asyncwrite.stats names the backend holding the head');

# Once its commit goes through, everything is applied.
$node->safe_psql('postgres', q{ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf()});
is($node->safe_psql('postgres', q{SELECT asyncwrite.flush(); SELECT string_agg(id::text, ',' ORDER BY id) FROM t}),
	"t\n1,2", 'after the commit, both writes are applied');
is($node->safe_psql('postgres', q{SELECT held_by_pid IS NULL FROM asyncwrite.stats WHERE database = 'postgres'}),
	't', 'and nothing holds the head');
$holder->quit;

$node->stop;
done_testing();
