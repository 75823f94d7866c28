# Clean stops lose nothing: writes still queued at a smart or fast stop,
# paused or not, are saved under the data directory and applied after the
# next start.  Write ids keep increasing across restarts.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('restart');
$node->safe_psql('postgres', 'CREATE TABLE r (id bigserial PRIMARY KEY, round text NOT NULL, n int NOT NULL)');

# Queue n writes for a round, in one transaction; returns the last write id.
sub queue_round
{
	my ($round, $n) = @_;
	my $out = $node->safe_psql('postgres', qq{
		SELECT count(asyncwrite.insert('r', jsonb_build_object('round', '$round', 'n', g)) IS NULL)
		  FROM generate_series(1, $n) g;
		SELECT asyncwrite.last_write_id();});
	return (split /\n/, $out)[-1];
}

sub count_round
{
	my ($round) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) || '/' || count(DISTINCT n) FROM r WHERE round = '$round'");
}

foreach my $mode ('fast', 'smart')
{
	# Paused: everything is still queued at the stop.
	$node->safe_psql('postgres', 'SELECT asyncwrite.pause()');
	my $last = queue_round("paused-$mode", 5000);
	is(aw_stat($node, 'postgres', 'queued'), '5000', "$mode: 5000 writes queued while paused");
	my $offset = -s $node->logfile;
	$node->stop($mode);
	ok(-f $node->data_dir . '/asyncwrite.queue', "$mode: queue file saved at stop");
	$node->start;
	ok(!-f $node->data_dir . '/asyncwrite.queue', "$mode: queue file loaded and removed at start");
	like(slurp_file($node->logfile, $offset), qr/asyncwrite restored 5000 queued writes/,
		"$mode: the log says how many writes were restored");
	is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', "$mode: flush after restart");
	is(count_round("paused-$mode"), '5000/5000', "$mode: all paused writes applied after restart, once each");
	my $next = $node->safe_psql('postgres',
		q{SELECT asyncwrite.insert('r', '{"round": "probe", "n": 0}', transactional => false)});
	ok($next > $last, "$mode: write ids keep increasing across the restart ($next > $last)");

	# Not paused: the worker is busy when the stop comes; it drains what it
	# can and the rest is saved.
	queue_round("running-$mode", 50000);
	$node->stop($mode);
	$node->start;
	is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', "$mode: flush after busy restart");
	is(count_round("running-$mode"), '50000/50000', "$mode: 50000 writes queued at a busy stop all applied once");
}

is($node->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'no dead letters');

# A prepared transaction's writes survive a restart with it, and are
# applied once it is committed.
$node->append_conf('postgresql.conf', 'max_prepared_transactions = 2');
$node->restart;
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT asyncwrite.insert('r', jsonb_build_object('round', '2pc', 'n', g)) FROM generate_series(1, 3) g;
	PREPARE TRANSACTION 'aw_2pc';});
$node->restart;
is(count_round('2pc'), '0/0', 'prepared writes are not applied before COMMIT PREPARED');
$node->safe_psql('postgres', q{COMMIT PREPARED 'aw_2pc'});
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush after COMMIT PREPARED');
is(count_round('2pc'), '3/3', 'prepared writes applied after a restart and COMMIT PREPARED');

# An immediate stop still saves what the worker was not applying.
$node->safe_psql('postgres', 'SELECT asyncwrite.pause()');
queue_round('crash', 100);
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush after immediate stop');
is(count_round('crash'), '100/100', 'immediate stop while paused: the queued writes are applied after restart');
queue_round('after-crash', 10);
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush after crash');
is(count_round('after-crash'), '10/10', 'queue works after an immediate stop');

$node->stop;
done_testing();
