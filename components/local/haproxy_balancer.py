"""balancer.engine haproxy: HAProxy 2.6 (Debian's) in place of Apache httpd, with the same contract and the same
pair, certificate, placement and rolling steps (components/local/load_balancer.py runs either).

What differs is HAProxy's own: the configuration (templates/haproxy.cfg), whose checks have the heartbeat's
timeout themselves (no heartbeat-watch beside them), a session kept on its node by `use-server` rules on the
route that ends its id, members drained and re-admitted through the runtime API on the admin socket, and a
certificate loaded by a reload that hands the listening sockets to new workers."""
import pulumi
import pulumi_docker as docker

from ..load_balancer_tier import LoadBalancerOutputs, LoadBalancerTierArgs
from ..render import render
from .certificate_rollout import AUTHORITY, HAPROXY_CONFIG, KINDS
from .certificates import TLS12_CIPHERS
from .load_balancer import (BALANCER_NAME, HTTP_PORT, HTTPS_PORT, BalancerEngine, dashboard_routing, https_url,
                            members, metrics_listener, run, static_routing)
from .rollout import ADMIN_SOCKET

BALANCE = {"round_robin": "roundrobin", "by_busyness": "leastconn"}  # the configured scheduling, in HAProxy's words


def balancer_config(args: LoadBalancerTierArgs) -> str:
    balancer = args.cluster.balancer
    directory = KINDS["haproxy"].directory
    return render(
        "haproxy.cfg",
        admin_socket=ADMIN_SOCKET,
        state_file="/run/haproxy/server-state",
        site_pem="/run/haproxy/site.pem",  # images/haproxy/site-pem.sh assembles it from the volume's files
        authority_file=f"{directory}/{AUTHORITY}",
        tls12_ciphers=TLS12_CIPHERS,
        https_port=HTTPS_PORT,
        http_port=HTTP_PORT,
        https_url=https_url(args),
        balancer_name=BALANCER_NAME,
        balance=BALANCE[balancer.scheduling],
        sticky_sessions=balancer.sticky_sessions,
        heartbeat=balancer.heartbeat,
        context_path=args.cluster.app.context_path,
        members=members(args),
        static=static_routing(args),
        dashboard=dashboard_routing(args),
        metrics=metrics_listener(args),
    )


def build(component: pulumi.ComponentResource, name: str, args: LoadBalancerTierArgs) -> LoadBalancerOutputs:
    return run(component, name, args, BalancerEngine(
        name="haproxy", user="haproxy", image=("images/haproxy", "openmrs-cluster/haproxy"),
        uploads=[docker.ContainerUploadArgs(file=HAPROXY_CONFIG, content=balancer_config(args))],
        # HAProxy answers on its plain port (the redirect); the admin socket is haproxy's alone.
        health=f"curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:{HTTP_PORT}/"))
