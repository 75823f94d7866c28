# A promoted standby whose WAL no longer has the messages of writes its
# primary had queued and not applied (its restartpoints removed them): those
# writes are reported lost, with their count and id range, in the log and in
# asyncwrite.stats; their ids are never given out again; writes logged later
# are read back and applied once.  In database "postgres" every write not
# applied is lost (their ids known only from the launcher's note of the ids
# given out); in database "later" five more were queued after the
# restartpoint.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $primary = aw_node('primary', "wal_keep_size = 0\n", allows_streaming => 1);
$primary->safe_psql('postgres', 'CREATE DATABASE later');
$primary->safe_psql('later', 'CREATE EXTENSION asyncwrite');
$primary->safe_psql($_, 'CREATE TABLE t (id int)') for ('postgres', 'later');
$primary->safe_psql('postgres', 'CREATE EXTENSION pg_walinspect');
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
# In the server log, LOG ranks above WARNING: keep the WARNINGs too.
$standby->append_conf('postgresql.conf', "log_min_messages = warning\n");
$standby->start;

# In each database 100 writes applied, then 20 queued in a paused queue.
my %mark;
for my $db ('postgres', 'later')
{
	$primary->safe_psql($db, q{
		SELECT count(asyncwrite.insert('t', jsonb_build_object('id', g), transactional => false))
		  FROM generate_series(1, 100) g;
		SELECT asyncwrite.flush()});
	$mark{$db} = $primary->safe_psql($db, 'SELECT applied_write_id FROM asyncwrite.applied_mark');
	$primary->safe_psql($db, q{SELECT asyncwrite.pause();
		SELECT count(asyncwrite.insert('t', jsonb_build_object('id', 100 + g))) FROM generate_series(1, 20) g});
}

# New segments and checkpoints, made restartpoints on the standby, until
# the standby has removed the segment of those writes.
my $segment = $primary->safe_psql('postgres', 'SELECT pg_walfile_name(pg_current_wal_insert_lsn())');
my $oldest = '';
for my $round (1 .. 10)
{
	$primary->safe_psql('postgres', 'SELECT pg_switch_wal(); CHECKPOINT');
	$primary->wait_for_catchup($standby);
	$standby->safe_psql('postgres', 'CHECKPOINT');
	$oldest = $standby->safe_psql('postgres',
		q{SELECT min(name) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'});
	last if $oldest gt $segment;
}
cmp_ok($oldest, 'gt', $segment, "the standby's WAL ($oldest) starts after the segment of the writes ($segment)");

# Five more in "later", logged after the restartpoint.
$primary->safe_psql('later',
	q{SELECT count(asyncwrite.insert('t', jsonb_build_object('id', 200 + g))) FROM generate_series(1, 5) g});

# The launcher notes the ids given out every 10 s while writes wait: wait
# for a note after the restartpoint, then for the standby to have it.
my $after = $primary->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
ok($primary->poll_query_until('postgres', qq{
	SELECT count(*) > 0 FROM pg_get_wal_records_info('$after', pg_current_wal_flush_lsn())
	 WHERE resource_manager = 'LogicalMessage' AND description LIKE '%asyncwrite_ids%'}),
	'the launcher notes the ids given out');
$primary->wait_for_catchup($standby);
$primary->stop('immediate');
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'no promotion';

my %rows = ('postgres' => 100, 'later' => 105);
for my $db ('postgres', 'later')
{
	my ($first, $last) = ($mark{$db} + 1, $mark{$db} + 20);
	is($standby->safe_psql($db, q{SELECT asyncwrite.flush('60 s'); SELECT count(*), count(DISTINCT id) FROM t}),
		"t\n$rows{$db}|$rows{$db}", "$db: the applied writes once, the ones logged after the restartpoint read back and applied");
	like(slurp_file($standby->logfile),
		qr/durable asyncwrite writes of database \d+ with write ids $first to $last may be lost.*\n.*At most 20 writes were lost/,
		"$db: the 20 writes whose WAL is gone are reported, with their ids and count");
	is(aw_stat($standby, $db, 'lost_writes') . ' ' . aw_stat($standby, $db, 'lost_write_ids'),
		'20 {[' . $first . ',' . ($last + 1) . ')}', "$db: asyncwrite.stats counts them, with their ids");
	cmp_ok($standby->safe_psql($db,
			q{SELECT asyncwrite.insert('t', '{"id": 999}', transactional => false)}),
		'>', $last, "$db: a new write's id is above theirs");
}

$standby->stop;
done_testing();
