# A role without search_path settings gets the server's: postgresql.conf's,
# read again by the worker at each reload, as a new session would; a worker
# started meanwhile takes the loaded value, not an unloaded file's.  ALTER
# ROLE ALL and a role's own setting come on top.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('path', "search_path = 'app, public'\n");
$node->safe_psql('postgres', q{
	CREATE ROLE aw_path_user LOGIN;
	CREATE SCHEMA app;
	CREATE TABLE public.t (id int);
	CREATE TABLE public.paths (id int, path text);
	GRANT INSERT ON public.t, public.paths TO aw_path_user;
	CREATE FUNCTION public.note_path() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.paths VALUES (NEW.id, current_setting('search_path'));
		RETURN NEW;
	END $$;
	CREATE TRIGGER note_path BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.note_path();
});

# Queue row $id as the role; return the search_path its trigger saw.
sub path_of
{
	my ($id) = @_;
	$node->safe_psql('postgres',
		"SELECT asyncwrite.insert('public.t', '{\"id\": $id}'); SELECT asyncwrite.flush();",
		extra_params => [ '-U', 'aw_path_user' ]);
	return $node->safe_psql('postgres', "SELECT path FROM public.paths WHERE id = $id");
}

my $direct = $node->safe_psql('postgres', 'SHOW search_path', extra_params => [ '-U', 'aw_path_user' ]);
is($direct, 'app, public', "a new session of the role gets postgresql.conf's search_path");
is(path_of(1), $direct, 'so does its queued write');

# postgresql.conf changes and is reloaded: new sessions and the worker follow.
$node->append_conf('postgresql.conf', "search_path = 'public, app'\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('search_path') = 'public, app'})
  or die 'reload not seen';
my $id = 2;
my $seen;
for (1 .. 100)
{
	$seen = path_of($id++);
	last if $seen eq 'public, app';
	select(undef, undef, undef, 0.1);
}
is($seen, 'public, app', "after a reload the worker applies with the new default");

# postgresql.auto.conf changed but not reloaded: a worker started now
# still gets what new sessions get, the loaded value.
$node->safe_psql('postgres', q{ALTER SYSTEM SET search_path = 'app'});
my $pid = aw_worker_pid($node, 'postgres');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres', q{SELECT worker_pid IS NULL FROM asyncwrite.stats WHERE database = 'postgres'})
  or die 'worker did not stop';
is(path_of(500), 'public, app', 'a new worker takes the loaded value, not the unloaded file');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET search_path});
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('search_path') = 'public, app'})
  or die 'reload not seen';

# ALTER ROLE ALL applies to every role, below a role's own setting.
$node->safe_psql('postgres', q{ALTER ROLE ALL SET search_path = app, public});
is(path_of(600), 'app, public', 'ALTER ROLE ALL SET search_path is applied');

# A role setting takes precedence, without a reload.
$node->safe_psql('postgres', 'ALTER ROLE aw_path_user SET search_path = app');
is(path_of(1000), 'app', 'a role setting wins over the server default');

$node->stop;
done_testing();
