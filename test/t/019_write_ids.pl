# Write ids are never given out twice: not after a crash of a backend (which
# resets shared memory), not after an immediate stop, not after DROP and
# CREATE EXTENSION, not across a restored save file; wait() for an id given
# out before a crash answers after it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('ids', "restart_after_crash = on\n");
$node->safe_psql('postgres', 'CREATE TABLE t (id int)');

# Queue $n writes at the call (and, unless paused, wait until they are
# applied: a crash still loses what is queued); return the last id.
sub queue_writes
{
	my ($n, $paused) = @_;
	my $id = $node->safe_psql('postgres',
		"SELECT max(asyncwrite.insert('t', jsonb_build_object('id', g), transactional => false)) FROM generate_series(1, $n) g");
	$node->safe_psql('postgres', 'SELECT asyncwrite.flush()') unless $paused;
	return $id;
}

my $last = queue_writes(10);
cmp_ok($last, '>=', 10, "ids given out ($last)");
ok(-f $node->data_dir . '/asyncwrite.ids', 'the id ceiling is on disk');

# A backend crash resets shared memory.
my $psql = $node->background_psql('postgres');
my $pid = $psql->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $pid;
$psql->quit;
$node->poll_query_until('postgres', 'SELECT true') or die 'no restart';
my $after = queue_writes(1);
cmp_ok($after, '>', $last, "after a crash, ids go on above the last one ($after > $last)");
is($node->safe_psql('postgres', "SELECT asyncwrite.wait($last, '5 s')"), 't',
	'wait() for an id given out before the crash answers');

# An immediate stop.
$node->stop('immediate');
$node->start;
$last = $after;
$after = queue_writes(1);
cmp_ok($after, '>', $last, "after an immediate stop too ($after > $last)");

# DROP and CREATE EXTENSION.
$node->safe_psql('postgres', 'SELECT asyncwrite.flush(); DROP EXTENSION asyncwrite; CREATE EXTENSION asyncwrite');
$last = $after;
$after = queue_writes(1);
cmp_ok($after, '>', $last, "after DROP and CREATE EXTENSION too ($after > $last)");

# A clean stop with writes queued (saved and restored), then a crash.
$node->safe_psql('postgres', 'SELECT asyncwrite.pause()');
$last = queue_writes(5, 1);
$node->stop;
$node->start;
$after = queue_writes(1);
cmp_ok($after, '>', $last, "after a restored save file too ($after > $last)");
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush(); SELECT count(*) FROM t'), "t\n" . (10 + 1 + 1 + 1 + 5 + 1),
	'every queued write applied once');

$node->stop;
done_testing();
