use strict; $SIG{PIPE} = "IGNORE"; fcntl(STDOUT, 1031, 1048576);
my ($left, $ok, $M, $b) = ($ARGV[0], 1, 1048576, "");
my $z = "\0" x $M;
sub put { my ($o, $l) = (0, length $_[0]);
  while ($ok && $o < $l) { my $w = syswrite(STDOUT, $_[0], $l - $o, $o); if (defined $w) { $o += $w } else { $ok = 0 } } }
while ($left > 0) {
  my $h = "";
  while (length($h) < 16) { my $r = sysread(STDIN, $h, 16 - length($h), length($h)); exit 1 unless $r; }
  $h =~ /\A([DZ]) +([0-9]{1,13})\n\z/ or exit 1;
  my ($k, $n) = ($1, $2 + 0);
  exit 1 if $n == 0 || $n > $left;
  $left -= $n;
  if ($k eq "D") {
    while ($n > 0) { my $r = sysread(STDIN, $b, $n < $M ? $n : $M); exit 1 unless $r; $n -= $r; put($b); }
  } else {
    while ($ok && $n > 0) { my $c = $n < $M ? $n : $M; put($c == $M ? $z : substr($z, 0, $c)); $n -= $c; }
  }
}
exit($ok ? 0 : 2);
