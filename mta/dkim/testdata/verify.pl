#!/usr/bin/perl
# Verifies the DKIM signatures of a message with Mail::DKIM, asking the DNS
# server at 127.0.0.1:PORT for keys. Used by interop_test.go.
#
# usage: verify.pl PORT FILE
# prints: "ed25519=yes|no" (whether this Mail::DKIM knows Ed25519), one
# "signature a=ALGO d=DOMAIN s=SELECTOR result=RESULT detail=..." line per
# signature, and "result=RESULT detail=..." for the message.
use strict;
use warnings;
use Mail::DKIM::DNS;
use Mail::DKIM::Verifier;
use Net::DNS::Resolver;

my ($port, $file) = @ARGV;
die "usage: verify.pl PORT FILE\n" unless defined $file;

my $ed25519 = eval { require Mail::DKIM::Algorithm::ed25519_sha256; 1 } ? 'yes' : 'no';
print "ed25519=$ed25519\n";

Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    config_file => '/dev/null',
    nameservers => ['127.0.0.1'],
    port        => $port,
    recurse     => 1,
    defnames    => 0,
    dnsrch      => 0,
    retry       => 2,
    udp_timeout => 5,
    tcp_timeout => 5,
));

open(my $fh, '<', $file) or die "open $file: $!\n";
binmode($fh);
my $dkim = Mail::DKIM::Verifier->new();
$dkim->load($fh);
close($fh);

foreach my $sig ($dkim->signatures) {
    printf "signature a=%s d=%s s=%s result=%s detail=%s\n",
        $sig->algorithm, $sig->domain, $sig->selector,
        $sig->result // '', $sig->result_detail // '';
}
printf "result=%s detail=%s\n", $dkim->result // '', $dkim->result_detail // '';
