# A trigger on a target that queues a write while the worker applies: the
# worker never waits for room in its own queue (only it can free it).  With
# the queue full, such a write fails at once and its write is a dead letter;
# the queue goes on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('worker_full', qq{
asyncwrite.queue_size = '64kB'
asyncwrite.max_retries = 1
asyncwrite.full_timeout = '30s'
});
$node->safe_psql('postgres', q{
	CREATE TABLE src (id int, pad text);
	CREATE TABLE copy (id int);
	CREATE FUNCTION requeue() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM asyncwrite.insert('public.copy', jsonb_build_object('id', NEW.id), transactional => false);
		RETURN NEW;
	END $$;
	CREATE TRIGGER requeue AFTER INSERT ON src FOR EACH ROW EXECUTE FUNCTION requeue();});

# Fill the paused queue nearly to the brim, then let the worker apply it:
# its first rows' triggers take the last room, the next find the queue full.
$node->safe_psql('postgres', q{SELECT asyncwrite.pause();
	SELECT count(asyncwrite.insert('src', jsonb_build_object('id', g, 'pad', repeat('x', 100)), transactional => false))
	  FROM generate_series(1, 400) g});
cmp_ok($node->safe_psql('postgres', q{SELECT queued_bytes FROM asyncwrite.stats WHERE database = 'postgres'}),
	'>', 60000, 'the queue is nearly full');
my $start = time;
is($node->safe_psql('postgres', 'SELECT asyncwrite.resume(); SELECT asyncwrite.flush()'), "\nt", 'flush');
cmp_ok(time - $start, '<', 25, 'the worker did not wait for room in its own queue');
my ($failed, $sqlstate) = split /\|/, $node->safe_psql('postgres',
	q{SELECT count(*), min(sqlstate) FROM asyncwrite.dead_letters});
cmp_ok($failed, '>', 0, "the writes whose trigger found the queue full are dead letters ($failed)");
is($sqlstate, '55000', 'with object_not_in_prerequisite_state, not a transient error');
is($node->safe_psql('postgres', q{SELECT (SELECT count(*) FROM src) + (SELECT count(*) FROM asyncwrite.dead_letters)}),
	'400', 'every write is applied or a dead letter');
is($node->safe_psql('postgres', q{SELECT state FROM asyncwrite.stats WHERE database = 'postgres'}), 'idle',
	'the queue goes on');

$node->stop;
done_testing();
