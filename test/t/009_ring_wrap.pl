# The ring's end: an entry never wraps, so a reservation that does not fit
# before the end leaves a filler there, an explicit padding entry when a
# header fits in the gap, else an implicit one.  The worker's batches and
# the save file at a clean stop must walk over both, applying every write
# exactly once.  A 64 kB queue and rows of known size put the head exactly
# where each case happens; queued_bytes (head - tail) confirms it.  The
# writes are not durable: the save file alone keeps them, byte for byte
# (durable ones come back from the WAL into a ring laid out afresh).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('ring_wrap', "asyncwrite.queue_size = '64kB'\nasyncwrite.durable = off\n");
my $capacity = 65536;
$node->safe_psql('postgres', 'CREATE TABLE w (id int PRIMARY KEY, pad text NOT NULL)');

# A row of w with a pad of 11 characters takes 64 bytes in the ring (entry
# header 24, row 24 + 4 + 1 + 11 rounded up to 40); with 19 characters, 72.
my %pad_for = (64 => 11, 72 => 19);
my $next_id = 1;
my $written = 0;

# Queue n writes of one entry size each, at the call.
sub queue_rows
{
	my ($n, $size) = @_;
	my ($from, $to) = ($next_id, $next_id + $n - 1);
	$node->safe_psql('postgres', qq{
		SELECT count(asyncwrite.insert('w', jsonb_build_object('id', g, 'pad', repeat('x', $pad_for{$size})),
		                               transactional => false))
		  FROM generate_series($from, $to) g});
	$next_id += $n;
	$written += $n;
}

# Queue writes taking exactly `bytes` bytes of 64- and 72-byte entries.
sub queue_bytes
{
	my ($bytes) = @_;
	my $big = 0;
	$big++ while (($bytes - 72 * $big) % 64 != 0);
	queue_rows(($bytes - 72 * $big) / 64, 64);
	queue_rows($big, 72) if $big;
}

# Every write so far applied, each exactly once, none failed.
sub check_applied
{
	my ($what) = @_;
	is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', "$what: flush");
	is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id), max(id) FROM w'),
		"$written|$written|$written", "$what: every write applied once");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0',
		"$what: no write failed");
	is(aw_stat($node, 'postgres', 'queued_bytes'), '0', "$what: the ring is empty");
}

# Fill the ring from the start up to `gap` bytes before its end (the head
# starts at `head`), let the worker apply that, then queue 10 rows while
# paused: the first one wraps, leaving the gap as a filler.
sub wrap_with_gap
{
	my ($head, $gap, $what) = @_;
	$node->safe_psql('postgres', 'SELECT asyncwrite.pause()');
	queue_bytes($capacity - $gap - $head);
	is(aw_stat($node, 'postgres', 'queued_bytes'), $capacity - $gap - $head,
		"$what: the head is $gap bytes before the ring's end");
	$node->safe_psql('postgres', 'SELECT asyncwrite.resume()');
	check_applied("$what, before the wrap");
	$node->safe_psql('postgres', 'SELECT asyncwrite.pause()');
	queue_rows(10, 64);
	is(aw_stat($node, 'postgres', 'queued_bytes'), $gap + 640,
		"$what: 10 rows queued after a $gap-byte filler");
	is(aw_stat($node, 'postgres', 'queued'), '10', "$what: the filler is no write");
}

# The worker walks over an implicit filler (16 bytes: no header fits).  A
# header's room always stays free (a ring refilled from the WAL needs it),
# so the ring is never filled from its very start: one row first.
queue_rows(1, 64);
check_applied('one row');
wrap_with_gap(64, 16, 'implicit filler, worker');
$node->safe_psql('postgres', 'SELECT asyncwrite.resume()');
check_applied('implicit filler, worker');

# The save file at a fast stop walks over an explicit padding entry (40
# bytes); the restored ring starts at 0.
wrap_with_gap(640, 40, 'padding entry, save file');
my $offset = -s $node->logfile;
$node->stop('fast');
$node->start;
like(slurp_file($node->logfile, $offset), qr/asyncwrite restored 10 queued writes/,
	'padding entry, save file: the 10 writes after it were saved and restored');
check_applied('padding entry, save file');

# The save file walks over an implicit filler too.
wrap_with_gap(640, 16, 'implicit filler, save file');
$offset = -s $node->logfile;
$node->stop('fast');
$node->start;
like(slurp_file($node->logfile, $offset), qr/asyncwrite restored 10 queued writes/,
	'implicit filler, save file: the 10 writes after it were saved and restored');
check_applied('implicit filler, save file');

$node->stop;
done_testing();
