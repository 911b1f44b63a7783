#!/bin/sh
# The site's certificate chain and key from the balancer's volume, as the one file HAProxy reads; readable by
# haproxy alone, and replaced whole, so that a reload never reads half of it.
set -eu
umask 077
cat /etc/haproxy/tls/certificate.pem /etc/haproxy/tls/private-key.pem > /run/haproxy/site.pem.new
mv /run/haproxy/site.pem.new /run/haproxy/site.pem
