"""The O3 application on the local platform: static servers (Debian's nginx, as www-data) holding the built
files, behind the balancers, which send <context path>/spa/ to them in turn and the rest to the nodes.

The image (images/o3-frontend) is tagged by the digest of its context and build arguments (the module set,
config URLs, default locale): an unchanged application is never built again. Each server presents a
certificate from the stack's authority for its route, as a node does, and is replaced as a node is: drained
from both balancers, replaced, admitted again once it serves, one server at a time (components/local/rollout.py),
so a new build or a renewed certificate fails no request."""
import pulumi
import pulumi_docker as docker

from ..checksums import PROJECT_ROOT, build_digest
from ..render import render
from ..static_content_tier import StaticContentTierArgs, StaticContentTierOutputs
from . import images
from .app_nodes import replaced_in_turn, rollout_settings
from .certificates import TLS12_CIPHERS
from .network import LOG_OPTIONS, readiness_check_interval

CONTEXT, REPOSITORY = "images/o3-frontend", "openmrs-cluster/o3-frontend"
BALANCER_NAME = "openmrs-static"  # the balancers' second balancer, beside the nodes'
TLS_PORT = 8443  # www-data cannot bind below 1024, and only the balancers connect
# nginx keeps an idle connection this long; the balancers stop reusing theirs 5 s before.
KEEP_ALIVE_SECONDS = 60
CONFIG_FILE = "/etc/nginx/openmrs-static.conf"
CERTIFICATE, PRIVATE_KEY = "/etc/openmrs-static/tls/certificate.pem", "/etc/openmrs-static/tls/private-key.pem"
# Static files answer at once: a server's running requests are done long before this.
DRAIN_SECONDS = 5


def route(index: int) -> str:
    return f"static{index + 1}"


def spa_path(context_path: str) -> str:
    return f"{context_path}/spa/"


def health_path(context_path: str) -> str:
    """What the balancers' heartbeats ask a static server: 200 only while its built files are there."""
    return f"{spa_path(context_path)}health"


def server_config(args: StaticContentTierArgs) -> str:
    return render("static-server.conf", https_port=TLS_PORT, server_name="openmrs-static",
                  certificate_file=CERTIFICATE, private_key_file=PRIVATE_KEY, tls12_ciphers=TLS12_CIPHERS,
                  keep_alive_seconds=KEEP_ALIVE_SECONDS,
                  content_security_policy=args.cluster.frontend.content_security_policy())


def build(component: pulumi.ComponentResource, name: str, args: StaticContentTierArgs) -> StaticContentTierOutputs:
    cluster = args.cluster
    build_args = cluster.frontend.build_args()
    if not cluster.frontend.enabled:
        return StaticContentTierOutputs(url=args.balancer.url, site_url=args.balancer.url, build="")
    network = args.network.platform_network
    heartbeat = cluster.balancer.heartbeat
    image = images.build_image(f"{name}-image", CONTEXT, REPOSITORY, component, build_args)
    config = server_config(args)
    manager = args.balancer.membership
    previous_step: pulumi.Resource = args.balancer
    for index in range(cluster.frontend.servers):
        logical, server_route = f"{name}-static-{index + 1}", route(index)
        machine = network.machine_of("static", index)
        address = network.static_server_address(index)
        issued = network.authority.issue(logical, server_route, [server_route], [address], *cluster.tls.lifetime_hours,
                                         component)
        container_args = dict(
            log_opts=LOG_OPTIONS,
            image=image.image_name,
            # A renewed certificate or a new build is a changed argument: the server is drained and replaced.
            uploads=[docker.ContainerUploadArgs(file=CONFIG_FILE, content=config),
                     docker.ContainerUploadArgs(file=CERTIFICATE, content=issued.certificate_pem),
                     docker.ContainerUploadArgs(file=PRIVATE_KEY, content=issued.private_key_pem)],
            networks_advanced=[network.attach(machine, address)],
            healthcheck=docker.ContainerHealthcheckArgs(
                # -k: over its own loopback, where the certificate (for its route) has nothing to prove.
                tests=["CMD", "curl", "-fsSk", "-o", "/dev/null",
                       f"https://localhost:{TLS_PORT}{health_path(cluster.app.context_path)}"],
                interval=readiness_check_interval(heartbeat.interval_seconds), timeout="3s", retries=heartbeat.fails,
                start_period="10s"),
            memory=256,
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            restart="unless-stopped",
            destroy_grace_seconds=30,  # the image's stop signal is nginx's graceful one
            wait=True,
            wait_timeout=120,
        )
        rollout = rollout_settings(manager, BALANCER_NAME, machine, server_route, TLS_PORT,
                                   network.container_name(logical), DRAIN_SECONDS, heartbeat)
        _, previous_step = replaced_in_turn(
            component, network, machine, logical, container_args, rollout, previous_step,
            depends_on=network.image_on(machine, f"{name}-image", image.image_name, image, component))
    return StaticContentTierOutputs(url=args.balancer.url.apply(lambda balancer_url: f"{balancer_url}spa/login"),
                                    site_url=args.balancer.url, build=build_digest(PROJECT_ROOT / CONTEXT, build_args))
