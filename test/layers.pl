#!/usr/bin/perl
# Check the layering of src/ on the built objects: file A depends on file B
# when A's object uses a function or variable B's object defines.  A file may
# use files of its own layer and of layers below it, never one above or
# beside it, and the dependencies form no cycle.  asyncwrite.c (_PG_init and
# the GUC variables) is used by all and uses all: it is left out.
#
#   perl test/layers.pl [SRC_DIR]     (after make; prints the edges with -v)
use strict;
use warnings;
use File::Basename;

my $verbose = @ARGV && $ARGV[0] eq '-v' ? shift : 0;
my $src = shift // 'src';

# Layers, top to bottom; worker and submit are side by side, as are queue
# and convert: neither of a pair may use the other.
my %rank = (
	api => 6,
	submit => 5,
	worker => 5,
	apply => 4,
	launcher => 3,
	wal => 2,
	queue => 1,
	convert => 1);

sub layer
{
	my ($file) = @_;
	my ($name) = $file =~ /^([a-z]+)/;
	return $name;
}

my (%defines, %uses);
my @objects = grep { basename($_) ne 'asyncwrite.o' } glob("$src/*.o");
die "no objects in $src: build first\n" unless @objects;
for my $obj (@objects)
{
	my $file = basename($obj, '.o') . '.c';
	for (`nm $obj`)
	{
		if (/^\s+U (\S+)$/) { push @{ $uses{$file} }, $1; }
		elsif (/^[0-9a-f]+ [TDBRC] (\S+)$/) { $defines{$1} = $file; }
	}
}

my $problems = 0;
my %edges;
for my $file (sort keys %uses)
{
	die "$file is in no known layer\n" unless defined $rank{ layer($file) };
	for my $sym (@{ $uses{$file} })
	{
		my $to = $defines{$sym};
		next unless defined $to && $to ne $file;
		$edges{$file}{$to} = $sym;
	}
	for my $to (sort keys %{ $edges{$file} })
	{
		my ($lf, $lt) = (layer($file), layer($to));
		print "$file -> $to ($edges{$file}{$to})\n" if $verbose;
		next if $lf eq $lt || $rank{$lf} > $rank{$lt};
		print "layering: $file ($lf) uses $to ($lt): $edges{$file}{$to}\n";
		$problems++;
	}
}

# No cycle, within a layer either: depth-first search for a back edge.
my %state;
sub visit
{
	my ($file, @path) = @_;
	return if ($state{$file} // 0) == 2;
	if (($state{$file} // 0) == 1)
	{
		print "cycle: ", join(' -> ', @path, $file), "\n";
		$problems++;
		return;
	}
	$state{$file} = 1;
	visit($_, @path, $file) for sort keys %{ $edges{$file} // {} };
	$state{$file} = 2;
}
visit($_) for sort keys %uses;

if ($problems)
{
	print "layers: $problems problems\n";
	exit 1;
}
printf "layers: %d files, %d dependencies, all downward, no cycle\n",
  scalar(keys %uses), scalar(map { keys %$_ } values %edges);
