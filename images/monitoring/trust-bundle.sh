#!/bin/sh
# What the monitoring trusts (a webhook's or a site certificate's public authority, or the stack's own), then the
# container's program: Debian's authorities and the stack's, in one file the unprivileged user can read.
set -eu
cat /etc/ssl/certs/ca-certificates.crt /etc/openmrs-monitoring/tls/authority.pem > /tmp/trust.pem
exec "$@"
