# Durable writes wait for synchronous standbys as a commit does: a
# transaction that only queued non-transactional writes has no commit record
# of its own, so the flush at its end waits for them; one that queued a
# transactional write commits a transaction id and waits at its commit.
# Cancelled, such a wait is a WARNING, as for a commit: the write stays.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('syncrep');
$node->safe_psql('postgres', 'CREATE TABLE t (id int PRIMARY KEY)');
# A standby that never comes: every wait for it lasts until it is released.
$node->safe_psql('postgres',
	q{ALTER SYSTEM SET synchronous_standby_names = 'nobody'; SELECT pg_reload_conf()});

# Wait until $n backends wait for synchronous replication.
sub waiters
{
	my ($n) = @_;
	return $node->poll_query_until('postgres',
		qq{SELECT count(*) = $n FROM pg_stat_activity WHERE wait_event = 'SyncRep'});
}

my %calls = (
	'non-transactional' => q{SELECT asyncwrite.insert('t', '{"id": 1}', transactional => false);},
	'transactional' => q{SELECT asyncwrite.insert('t', '{"id": 2}');},
	'non-transactional, in a transaction' =>
	  q{BEGIN; SELECT asyncwrite.insert('t', '{"id": 3}', transactional => false); COMMIT;},
	'synchronous_commit = local' =>
	  q{SET synchronous_commit = local; SELECT asyncwrite.insert('t', '{"id": 4}', transactional => false);});
my @sessions;
for my $what (sort keys %calls)
{
	my $psql = $node->background_psql('postgres', on_error_stop => 0);
	$psql->query_until(qr/started/, "\\echo started\n$calls{$what}\n");
	push @sessions, [ $what, $psql ];
}
ok(waiters(3), 'three of the four calls wait for the synchronous standby');
is($node->safe_psql('postgres',
		q{SELECT string_agg(query, ' | ' ORDER BY query) FROM pg_stat_activity WHERE wait_event = 'SyncRep'})
	  =~ tr/|//, 2, 'the three durable calls (not the one with synchronous_commit local)');

# The standby requirement goes: every wait ends, every write is applied once.
$node->safe_psql('postgres',
	q{ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf()});
ok(waiters(0), 'the waits end when no synchronous standby is required');
$_->[1]->quit for @sessions;
$node->safe_psql('postgres', 'SELECT asyncwrite.flush()');
is($node->safe_psql('postgres', 'SELECT array_agg(id ORDER BY id) FROM t'), '{1,2,3,4}',
	'every write applied once');

# A cancelled wait is a WARNING, as for a commit: the write was queued.
$node->safe_psql('postgres',
	q{ALTER SYSTEM SET synchronous_standby_names = 'nobody'; SELECT pg_reload_conf()});
my $psql = $node->background_psql('postgres', on_error_stop => 0);
$psql->query_until(qr/started/,
	"\\echo started\nSELECT asyncwrite.insert('t', '{\"id\": 5}', transactional => false);\n");
ok(waiters(1), 'a non-transactional write waits again');
$node->safe_psql('postgres',
	q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'});
ok(waiters(0), 'its wait is cancelled');
$psql->quit;
like($psql->{stderr}, qr/canceling wait for synchronous replication/,
	'the caller is told, as a commit would tell it');
$node->safe_psql('postgres',
	q{ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf()});
$node->safe_psql('postgres', 'SELECT asyncwrite.flush()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id = 5'), '1',
	'the write whose wait was cancelled is applied');

# With synchronous_commit off, a transaction that only queued writes has no
# commit record to have the WAL writer flush them soon: the launcher does,
# for all such writes at once.  Within a second (the WAL writer's 200 ms and
# the launcher's 10 ms), as a commit would be, while nothing else writes WAL.
$node->safe_psql('postgres', 'SELECT asyncwrite.pause()');
my %quiet = (
	'transactional' => q{SELECT asyncwrite.insert('t', '{"id": 6}')},
	'non-transactional' =>
	  q{SELECT asyncwrite.insert('t', '{"id": 7}', transactional => false)});
for my $what (sort keys %quiet)
{
	my $lsn = $node->safe_psql('postgres',
		"SET synchronous_commit = off; $quiet{$what}; SELECT pg_current_wal_insert_lsn()");
	$lsn = (split /\n/, $lsn)[-1];
	my $start = time;
	my $flushed = 0;
	while (time - $start < 3)
	{
		$flushed = $node->safe_psql('postgres',
			"SELECT pg_current_wal_flush_lsn() >= '$lsn'") eq 't';
		last if $flushed;
		select(undef, undef, undef, 0.05);
	}
	ok($flushed, "$what, synchronous_commit off: the write's WAL is flushed within 3 s");
}
$node->safe_psql('postgres', 'SELECT asyncwrite.resume()');
$node->safe_psql('postgres', 'SELECT asyncwrite.flush()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id IN (6, 7)'), '2',
	'both are applied');

$node->stop;
done_testing();
