#!/usr/bin/perl
# Writes N lines of deterministic pseudo-random text (words, numbers, a few
# long lines) to stdout: input for the compression, sort and git tests.
use strict;
use warnings;

my $n = shift // 100000;
my $x = 20260101;
my @syll = qw(ka ko zu na ha be ri mo to su wa ne yu pi do);
sub next_rand { $x = ($x * 1103515245 + 12345) % 2147483648; return $x >> 4; }
for my $i (1 .. $n) {
    my $words = 1 + next_rand() % (next_rand() % 50 == 0 ? 400 : 12);
    my @w;
    for (1 .. $words) {
        my $r = next_rand();
        push @w, join('', map { $syll[($r >> (4 * $_)) % @syll] } 0 .. $r % 4) . ($r % 7 == 0 ? $r % 100000 : '');
    }
    print join(' ', @w), "\n";
}
