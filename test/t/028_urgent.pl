# Urgent writes: the worker applies an urgent write at once, without waiting
# for asyncwrite.flush_interval or a full batch, applies every write queued
# before it with it (in order), and ends its batch with it: a write queued
# after it waits for flush_interval as usual.  Per call (urgent => true), per
# session (asyncwrite.urgent), at the call and at commit.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

# A flush interval far longer than the test: only urgency applies writes.
my $node = aw_node('urgent', "asyncwrite.flush_interval = '10min'\n");
$node->safe_psql('postgres', 'CREATE TABLE u (id int PRIMARY KEY)');

# Wait until row $id is visible; return the seconds it took, or undef.
sub visible_within
{
	my ($id, $timeout) = @_;
	my $t0 = time;
	while (time - $t0 < $timeout)
	{
		return time - $t0
		  if $node->safe_psql('postgres', "SELECT count(*) FROM u WHERE id = $id") eq '1';
	}
	return undef;
}

sub state_of
{
	my ($write_id) = @_;
	return $node->safe_psql('postgres', "SELECT state FROM asyncwrite.status($write_id)");
}

# The worker is running (started by the first write) and idle.
my $first = $node->safe_psql('postgres',
	"SELECT asyncwrite.insert('u', '{\"id\": 1}', transactional => false)");
is($node->safe_psql('postgres', "SELECT asyncwrite.wait($first, '30 s')"), 't', 'first write applied by wait()');

# At the call: a plain write, an urgent one, a plain one after it.
my $ids = $node->safe_psql('postgres', q{
	SELECT asyncwrite.insert('u', '{"id": 2}', transactional => false) || ',' ||
	       asyncwrite.insert('u', '{"id": 3}', transactional => false, urgent => true) || ',' ||
	       asyncwrite.insert('u', '{"id": 4}', transactional => false)});
my ($before, $urgent, $after) = split /,/, $ids;
my $took = visible_within(3, 20);
ok(defined $took, 'an urgent write is applied without flush(), flush_interval being 10 minutes');
is($node->safe_psql('postgres', 'SELECT count(*) FROM u WHERE id = 2'), '1',
	'the write queued before it is applied with it');
is(state_of($urgent), 'applied', 'status() of the urgent write: applied');
is(state_of($after), 'queued', 'the write queued after it waits for flush_interval: its batch ended with the urgent one');

# At commit: the urgent write of a transaction is applied once it commits.
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT asyncwrite.insert('u', '{"id": 5}');
	SELECT asyncwrite.insert('u', '{"id": 6}', urgent => true);
	COMMIT;});
ok(defined visible_within(6, 20), 'an urgent transactional write is applied after its commit');
is($node->safe_psql('postgres', 'SELECT array_agg(id ORDER BY id) FROM u'), '{1,2,3,4,5,6}',
	'with every write queued before it, in order');

# A rolled-back urgent write wakes nothing and applies nothing.
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT asyncwrite.insert('u', '{"id": 7}', urgent => true);
	ROLLBACK;});

# The session setting.
$node->safe_psql('postgres', q{
	SET asyncwrite.urgent = on;
	SELECT asyncwrite.insert('u', '{"id": 8}');});
ok(defined visible_within(8, 20), 'asyncwrite.urgent = on makes every write of the session urgent');

# A plain write stays queued until flush().
my $plain = $node->safe_psql('postgres',
	"SELECT asyncwrite.insert('u', '{\"id\": 9}', transactional => false)");
is(state_of($plain), 'queued', 'a plain write is still queued');
$node->safe_psql('postgres', 'SELECT asyncwrite.flush()');
is($node->safe_psql('postgres', 'SELECT array_agg(id ORDER BY id) FROM u'), '{1,2,3,4,5,6,8,9}',
	'every committed write applied once, the rolled-back one not at all');
is(aw_stat($node, 'postgres', 'failed'), '0', 'nothing failed');

$node->stop;
done_testing();
