"""The project's server.xml (components/templates/server.xml) on Fargate, where no file can be uploaded into a
container: a short first container of the node's own image copies the image's Tomcat configuration into a
volume of the task, writes the rendered server.xml over it, and gives Tomcat the task's own jvmRoute (the
first label of its host name, ip-10-40-128-5) in catalina.properties, whose entries Tomcat turns into the
system properties that server.xml's ${jvmRoute} reads. The node's container then mounts that volume, read
only, as its Tomcat configuration.

What it changes behind the ALB: the RemoteIpValve trusts the ALB's private address and takes the client's
address and scheme from X-Forwarded-For and X-Forwarded-Proto, so a request that came over HTTPS is secure
to OpenMRS: its session cookie is Secure, and its redirects stay on https. The connector keeps an idle
connection longer than the ALB does, so that the ALB never reuses a connection Tomcat has just closed
(which the client would see as a 502)."""
from ..render import render

CONTAINER = "tomcat-conf"
VOLUME = "tomcat-conf"
TOMCAT_CONF = "/usr/local/tomcat/conf"  # the official image's CATALINA_HOME/conf, where local nodes get server.xml
WRITTEN_AT = "/tomcat-conf"
# Seconds Tomcat keeps an idle connection beyond the ALB's idle timeout.
KEEP_ALIVE_MARGIN_SECONDS = 5

SCRIPT = (
    'set -eu; cp -R "$TOMCAT_CONF/." "$WRITTEN_AT/"; printf "%s" "$SERVER_XML" > "$WRITTEN_AT/server.xml"; '
    'printf "\\njvmRoute=%s\\n" "$(cut -d. -f1 /proc/sys/kernel/hostname)" >> "$WRITTEN_AT/catalina.properties"'
)


def server_xml(port: int, idle_timeout_seconds: int) -> str:
    # No TLS connector: the ALB reaches the task on its own port, inside the VPC.
    return render("server.xml", port=port, tls_port=None, keep_alive_seconds=idle_timeout_seconds + KEEP_ALIVE_MARGIN_SECONDS)


def container(image: str, port: int, idle_timeout_seconds: int, log_options: dict[str, str]) -> dict:
    """Runs as root, with no capability, only because a task's volume is created owned by root (mode 0755)."""
    environment = {"SERVER_XML": server_xml(port, idle_timeout_seconds), "TOMCAT_CONF": TOMCAT_CONF,
                   "WRITTEN_AT": WRITTEN_AT}
    return {
        "name": CONTAINER,
        "image": image,
        "essential": False,
        "user": "0",
        "entryPoint": ["sh", "-c"],
        "command": [SCRIPT],
        "environment": [{"name": key, "value": value} for key, value in sorted(environment.items())],
        "mountPoints": [{"sourceVolume": VOLUME, "containerPath": WRITTEN_AT, "readOnly": False}],
        "linuxParameters": {"capabilities": {"drop": ["ALL"]}},
        "logConfiguration": {"logDriver": "awslogs", "options": {**log_options, "awslogs-stream-prefix": CONTAINER}},
    }


# How the node's container sees the written configuration.
NODE_MOUNT = {"sourceVolume": VOLUME, "containerPath": TOMCAT_CONF, "readOnly": True}
