#!/usr/bin/perl
# A Perl client the way LWP::UserAgent waits for an answer: IO::Select->can_read with its
# default timeout of 180 s (LWP's `timeout`), against 127.0.0.1:PORT.
#   perl clients.pl select-180 PORT    too_large (180 s > 60 s)
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;

my ($mode, $port) = @ARGV;
die "unknown mode $mode\n" unless $mode eq 'select-180';
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
    or die "connect: $!\n";
$s->autoflush(1);
print $s "GET / HTTP/1.0\r\n\r\n";
my $sel = IO::Select->new($s);
while (1) {
    last unless $sel->can_read(180);
    last unless sysread($s, my $buf, 4096);
}
sleep 3600;
