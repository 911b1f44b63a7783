#!/bin/sh
# As the official image: OMRS_JAVA_SERVER_OPTS becomes JAVA_OPTS (it carries -DjvmRoute), then catalina.sh run.
set -eu
export CATALINA_HOME=/usr/share/tomcat10 CATALINA_BASE=/usr/local/tomcat
export JAVA_OPTS="${OMRS_JAVA_SERVER_OPTS:--Dfile.encoding=UTF-8}"
exec /usr/share/tomcat10/bin/catalina.sh run
