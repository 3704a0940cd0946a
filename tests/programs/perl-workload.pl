#!/usr/bin/perl
# Perl workload for tests/programs/run.sh: hashes, regexes, sorting and
# nested data built and thrown away, over the generated input file. Prints
# results and checksums, which must not change under the preloaded allocator.
use strict;
use warnings;

my $file = shift or die "usage: perl-workload.pl INPUT\n";
open my $in, '<', $file or die "$file: $!\n";
my @lines = <$in>;
close $in;
chomp @lines;

my %count;
my $longest = '';
for my $line (@lines) {
    for my $w (split / /, $line) {
        $count{$w}++;
        $longest = $w if length $w > length $longest;
    }
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 19];
print "lines ", scalar @lines, ", distinct words ", scalar keys %count, ", longest $longest\n";
print "top: ", join(' ', map { "$_=$count{$_}" } @top), "\n";

# Regex rewriting builds a new string per line.
my $sum = 0;
for my $line (@lines) {
    (my $t = $line) =~ s/(\w+?)(\d+)/$2:$1/g;
    $t =~ tr/a-m/n-z/;
    $sum = ($sum + unpack('%32W*', $t)) % 4294967296;
}
print "rewritten checksum $sum\n";

# Nested structures built and dropped, round after round.
for my $round (1 .. 4) {
    my %index;
    for my $i (0 .. $#lines) {
        next if $i % $round;
        my @w = split / /, $lines[$i];
        push @{ $index{ substr($w[0], 0, 2) }{ scalar @w } }, [ $i, reverse @w ];
    }
    my $n = 0;
    my $chars = 0;
    for my $k (sort keys %index) {
        for my $len (sort { $a <=> $b } keys %{ $index{$k} }) {
            $n += @{ $index{$k}{$len} };
            $chars += length join '', map { @$_[1 .. $#$_] } @{ $index{$k}{$len} };
        }
    }
    print "round $round: ", scalar keys %index, " keys, $n entries, $chars chars\n";
}

# Sort by a computed key and join everything into one big string.
my @sorted = map { $_->[1] } sort { $a->[0] cmp $b->[0] || $a->[1] cmp $b->[1] }
    map { [ join('', reverse split //, $_), $_ ] } @lines[0 .. ($#lines < 99999 ? $#lines : 99999)];
my $big = join "\n", @sorted;
print "sorted: first '$sorted[0]', length ", length($big), ", checksum ", unpack('%32W*', $big), "\n";
