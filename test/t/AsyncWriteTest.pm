# Helpers for the asyncwrite TAP tests: a node with asyncwrite preloaded.
package AsyncWriteTest;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Exporter 'import';

our @EXPORT = qw(aw_node aw_stat aw_worker_pid);

# A started node with asyncwrite preloaded and created in "postgres".
sub aw_node
{
	my ($name, $extra_conf, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%opts);
	# Durable writes (the default) are kept in the WAL by a replication slot:
	# wal_level replica, not the test framework's minimal.
	$node->append_conf('postgresql.conf', "wal_level = replica\nmax_wal_senders = 10\nmax_replication_slots = 10\n")
	  unless $opts{allows_streaming};
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'asyncwrite'
asyncwrite.queue_size = '16MB'
max_worker_processes = 16
log_min_messages = warning
} . ($extra_conf // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION asyncwrite');
	return $node;
}

# One column of this database's asyncwrite.stats row.
sub aw_stat
{
	my ($node, $db, $column) = @_;
	return $node->safe_psql($db,
		"SELECT $column FROM asyncwrite.stats WHERE database = current_database()");
}

# The pid of database $db's worker, once one runs (a worker starts
# asynchronously: poll, with the tests' usual timeout).
sub aw_worker_pid
{
	my ($node, $db) = @_;
	$node->poll_query_until('postgres',
		"SELECT worker_pid IS NOT NULL FROM asyncwrite.stats WHERE database = '$db'")
	  or die "no asyncwrite worker started for database $db";
	return $node->safe_psql('postgres',
		"SELECT worker_pid FROM asyncwrite.stats WHERE database = '$db'");
}

1;
