# The queue file saved at a clean stop is loaded only by the cluster that
# wrote it, starting as a primary, on the same PostgreSQL major: a standby
# made from a copy of the stopped primary's data directory does not apply
# its writes a second time at promotion, and a file of another cluster or
# major is kept aside with a WARNING.
use strict;
use warnings;
use File::Copy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $primary = aw_node('primary', "log_min_messages = warning\n", allows_streaming => 1);
$primary->safe_psql('postgres', q{CREATE TABLE t (id int PRIMARY KEY);
	SELECT asyncwrite.pause();
	SELECT count(asyncwrite.insert('t', jsonb_build_object('id', g), transactional => false))
	  FROM generate_series(1, 200) g});
$primary->stop;
my $file = $primary->data_dir . '/asyncwrite.queue';
ok(-f $file, 'the stopped primary saved its 200 queued writes');

# A standby made from a cold copy of the data directory, file included.
$primary->backup_fs_cold('cold');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'cold', has_streaming => 1);
ok(-f $standby->data_dir . '/asyncwrite.queue', 'the copy holds the file');
my $offset = -s $standby->logfile;
$standby->start;
$standby->wait_for_log(qr/could not restore the queued asyncwrite writes: the server starts as a standby/, $offset);
ok(-f $standby->data_dir . '/asyncwrite.queue.unloaded', 'the standby keeps the file aside');
is($standby->safe_psql('postgres', q{SELECT coalesce(sum(queued), 0) FROM asyncwrite.stats}), '0',
	'the standby queued nothing');

# The primary loads and applies them once; the promoted standby never again.
$primary->start;
is($primary->safe_psql('postgres', q{SELECT asyncwrite.flush(); SELECT count(*) FROM t}), "t\n200",
	'the primary applies the saved writes');
$primary->wait_for_catchup($standby);
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'no promotion';
is($standby->safe_psql('postgres', q{SELECT asyncwrite.flush(); SELECT count(*), count(DISTINCT id) FROM t}),
	"t\n200|200", 'after promotion the writes are there once, not applied a second time');
$standby->stop;

# A file of another cluster (another system identifier) is kept aside.
# These writes are not durable: the file alone holds them (durable ones
# would come back from the WAL, not from the file).
$primary->safe_psql('postgres', q{SET asyncwrite.durable = off;
	SELECT asyncwrite.pause();
	SELECT count(asyncwrite.insert('t', jsonb_build_object('id', g), transactional => false))
	  FROM generate_series(201, 210) g});
$primary->stop;
my $other = aw_node('other', "log_min_messages = warning\n");
$other->safe_psql('postgres', 'CREATE TABLE t (id int PRIMARY KEY)');
$other->stop;
copy($file, $other->data_dir . '/asyncwrite.queue') or die "copy: $!";
$offset = -s $other->logfile;
$other->start;
$other->wait_for_log(qr/could not restore the queued asyncwrite writes: it was written by the cluster with system identifier \d+, not this one/,
	$offset);
is($other->safe_psql('postgres', q{SELECT asyncwrite.flush(); SELECT count(*) FROM t}), "t\n0",
	'another cluster does not apply the file');
ok(-f $other->data_dir . '/asyncwrite.queue.unloaded', 'and keeps it aside');
$other->stop;

# A file of another PostgreSQL major is kept aside too.
my $bytes = slurp_file($file);
substr($bytes, 4, 4) = pack('L', 14);
open(my $fh, '>:raw', $file) or die $!;
print $fh $bytes;
close $fh;
$offset = -s $primary->logfile;
$primary->start;
$primary->wait_for_log(qr/could not restore the queued asyncwrite writes: it was written by PostgreSQL 14, this server is \d+/,
	$offset);
is($primary->safe_psql('postgres', q{SELECT asyncwrite.flush(); SELECT count(*) FROM t}), "t\n200",
	'a file of another major is not loaded');
$primary->stop;

done_testing();
