# A server restored from a base backup and archived WAL (recovery.signal)
# has no slot of asyncwrite, as a promoted standby has none: once its
# recovery ends, the writes its source had queued and not applied are read
# back from the WAL it restored and applied once; new ids go above theirs.
# The end-of-recovery checkpoint removes the restored WAL that wal_keep_size
# does not keep: the restored server keeps it (README, Durability).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $source = aw_node('source', '', has_archiving => 1, allows_streaming => 1);
$source->safe_psql('postgres', 'CREATE TABLE t (id int)');
$source->backup('base');

# 100 writes applied, 20 queued and not applied, their WAL archived.
$source->safe_psql('postgres', q{
	SELECT count(asyncwrite.insert('t', jsonb_build_object('id', g), transactional => false))
	  FROM generate_series(1, 100) g;
	SELECT asyncwrite.flush();
	SELECT asyncwrite.pause();
	SELECT count(asyncwrite.insert('t', jsonb_build_object('id', 100 + g))) FROM generate_series(1, 20) g});
my $mark = $source->safe_psql('postgres', 'SELECT applied_write_id FROM asyncwrite.applied_mark');
my $segment = $source->safe_psql('postgres', 'SELECT pg_walfile_name(pg_current_wal_insert_lsn())');
$source->safe_psql('postgres', 'SELECT pg_switch_wal()');
$source->poll_query_until('postgres',
	"SELECT last_archived_wal >= '$segment' FROM pg_stat_archiver")
  or die 'the WAL was not archived';
$source->stop('immediate');

my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($source, 'base', has_restoring => 1, standby => 0);
$restored->append_conf('postgresql.conf', "wal_keep_size = '1GB'\n");

# First with no room for a worker (the launcher takes the only background
# worker slot; hot_standby off, which a smaller setting than the source's
# needs): flush() waits for the writes still to be read back, however
# few ids this server had given out before, and times out.
$restored->append_conf('postgresql.conf', "max_worker_processes = 1\nmax_logical_replication_workers = 0\nhot_standby = off\n");
$restored->start;
$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'recovery did not end';
is($restored->safe_psql('postgres', q{SELECT asyncwrite.flush('1 s'); SELECT count(*) FROM t}),
	"f\n100", 'flush() does not return before the queued writes are read back');
is($restored->safe_psql('postgres', 'SELECT state FROM asyncwrite.stats WHERE database = current_database()'),
	'recovering', 'the queue is recovering');
my ($ret, $out, $err) = $restored->psql('postgres',
	"SET asyncwrite.ddl_flush_timeout = '500ms'; ALTER TABLE t ADD COLUMN note text");
like($err, qr/queued asyncwrite writes were not all applied before this DDL/,
	'DDL on a table waits for the writes still to be read back first (and warns when they are not)');
my $queued = $mark + 20;
is($restored->safe_psql('postgres', "SELECT asyncwrite.wait($queued, '1 s')"), 'f',
	'wait() for a write still to be read back times out (its id is not known to be issued yet)');

# Then a worker: stopped cleanly before it read anything back, the server
# still reads them back when it starts again, from the slot the launcher
# made once it had looked for the writes in the restored WAL.
$restored->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_replication_slots
	   WHERE slot_name = 'asyncwrite_' || (SELECT oid FROM pg_database WHERE datname = 'postgres')})
  or die 'the launcher made no slot';
$restored->stop;
$restored->append_conf('postgresql.conf', "max_worker_processes = 16\n");
$restored->start;
is($restored->safe_psql('postgres', q{SELECT asyncwrite.flush('60 s'); SELECT count(*), count(DISTINCT id) FROM t}),
	"t\n120|120", 'the applied writes once, the 20 queued ones read back from the restored WAL and applied');
is($restored->safe_psql('postgres', "SELECT asyncwrite.wait($queued, '60 s')"), 't',
	'wait() for the last of them returns true');
cmp_ok($restored->safe_psql('postgres',
		q{SELECT asyncwrite.insert('t', '{"id": 999}', transactional => false)}),
	'>', $mark + 20, 'a new write gets an id above theirs');

$restored->stop;
done_testing();
