#!/bin/sh
# As the official image's startup.sh: wait for the database's port (wait-for-it -t 3600), delete and re-copy
# modules and configuration from the distribution, OMRS_JAVA_SERVER_OPTS becomes JAVA_OPTS (it carries
# -DjvmRoute) and OMRS_JAVA_MEMORY_OPTS CATALINA_OPTS, then catalina.sh run.
set -eu
wait-for-it -t 3600 "${OMRS_DB_HOSTNAME:-localhost}:${OMRS_DB_PORT:-3306}"
rm -rf /openmrs/data/modules /openmrs/data/configuration
cp -r /openmrs/distribution/openmrs_modules /openmrs/data/modules
cp -r /openmrs/distribution/openmrs_config /openmrs/data/configuration
export CATALINA_HOME=/usr/share/tomcat10 CATALINA_BASE=/usr/local/tomcat
export JAVA_OPTS="${OMRS_JAVA_SERVER_OPTS:--Dfile.encoding=UTF-8}"
# The stand-in's own addition: its JVM compiles with C1 only, which starts it on a fraction of the CPU (the tests
# restart nodes while two cores serve the whole cluster under load); its pages need no faster code.
export CATALINA_OPTS="${OMRS_JAVA_MEMORY_OPTS:--XX:NewSize=128m} -XX:TieredStopAtLevel=1"
exec /usr/share/tomcat10/bin/catalina.sh run
