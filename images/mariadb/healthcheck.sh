#!/bin/bash
# Healthy: the server answers on its socket (the first-start server uses another one). Whether it is the
# writer or a replica, and whether it replicates, is the database monitor's business.
set -euo pipefail
mariadb-admin ping >/dev/null
