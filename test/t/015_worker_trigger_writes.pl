# A trigger on a target that queues a write while the worker applies: the
# write, transactional or not, is made in the run's own (sub)transaction.
# So the worker never waits for room in its own queue (only it can free
# it), and a run that fails and is tried again in halves takes the
# trigger's writes back: each is made exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('worker_trigger', qq{
asyncwrite.queue_size = '64kB'
asyncwrite.max_retries = 1
asyncwrite.full_timeout = '30s'
});
$node->safe_psql('postgres', q{
	CREATE TABLE src (id int CHECK (id % 100 <> 50), pad text);
	CREATE TABLE copy (id int);
	CREATE FUNCTION requeue() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM asyncwrite.insert('public.copy', jsonb_build_object('id', NEW.id), transactional => false);
		RETURN NEW;
	END $$;
	CREATE TRIGGER requeue BEFORE INSERT ON src FOR EACH ROW EXECUTE FUNCTION requeue();});

# Fill the paused queue nearly to the brim, then let the worker apply it:
# the triggers' writes would not fit in the queue.  Rows 50, 150, ... fail
# their CHECK after their trigger ran, so their runs are tried in halves.
$node->safe_psql('postgres', q{SELECT asyncwrite.pause();
	SELECT count(asyncwrite.insert('src', jsonb_build_object('id', g, 'pad', repeat('x', 100)), transactional => false))
	  FROM generate_series(1, 400) g});
cmp_ok($node->safe_psql('postgres', q{SELECT queued_bytes FROM asyncwrite.stats WHERE database = 'postgres'}),
	'>', 60000, 'the queue is nearly full');
my $start = time;
is($node->safe_psql('postgres', 'SELECT asyncwrite.resume(); SELECT asyncwrite.flush()'), "\nt", 'flush');
cmp_ok(time - $start, '<', 25, 'the worker did not wait for room in its own queue');
is($node->safe_psql('postgres', q{SELECT count(*), count(DISTINCT id), sum(id) FROM src}),
	'396|396|' . (80200 - 50 - 150 - 250 - 350), 'every good row applied once');
is($node->safe_psql('postgres', q{SELECT count(*), count(DISTINCT id), sum(id) FROM copy}),
	'396|396|' . (80200 - 50 - 150 - 250 - 350),
	'each applied row got its trigger write exactly once, a failed row none, despite the retries in halves');
is($node->safe_psql('postgres', q{SELECT string_agg(payload->>'id', ',' ORDER BY write_id), min(sqlstate) FROM asyncwrite.dead_letters}),
	'50,150,250,350|23514', 'the failing rows are dead letters');
is($node->safe_psql('postgres', q{SELECT state, queued FROM asyncwrite.stats WHERE database = 'postgres'}), 'idle|0',
	'the queue goes on, nothing left in it');

$node->stop;
done_testing();
