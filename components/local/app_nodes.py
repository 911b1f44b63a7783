"""The local app nodes: one container per node on the private network, each with a fixed address."""
import pulumi
import pulumi_docker as docker

from ..passwords import password
from ..render import render
from ..tomcat_pool import OFFICIAL_JAVA_SERVER_OPTS, PoolMember, TomcatPoolArgs, route_of
from . import images

SERVER_XML = "/usr/local/tomcat/conf/server.xml"


def node_environment(args: TomcatPoolArgs, route: str, admin_password: pulumi.Output[str]) -> list:
    """The official image's OMRS_* contract, in cluster mode (module web administration off)."""
    database = args.database
    host_and_port = database.writer_endpoint.apply(lambda endpoint: endpoint.rsplit(":", 1))
    return [
        "OMRS_DB=mariadb",
        pulumi.Output.concat("OMRS_DB_HOSTNAME=", host_and_port[0]),
        pulumi.Output.concat("OMRS_DB_PORT=", host_and_port[1]),
        pulumi.Output.concat("OMRS_DB_NAME=", database.database),
        pulumi.Output.concat("OMRS_DB_USERNAME=", database.user),
        pulumi.Output.concat("OMRS_DB_PASSWORD=", database.password),
        pulumi.Output.concat("OMRS_ADMIN_USER_PASSWORD=", admin_password),
        "OMRS_MODULE_WEB_ADMIN=false",
        f"OMRS_JAVA_SERVER_OPTS={OFFICIAL_JAVA_SERVER_OPTS} -DjvmRoute={route}",
    ]


def app_image(name: str, args: TomcatPoolArgs, component: pulumi.ComponentResource) -> pulumi.Output[str]:
    """The user's own build of the app (app.build), or the configured image pulled from its registry."""
    settings = args.cluster.app
    if settings.build:
        return images.build_image(f"{name}-image", settings.build, "openmrs-cluster/app", component).image_name
    remote = docker.RemoteImage(
        f"{name}-image", name=settings.image, keep_locally=True, opts=pulumi.ResourceOptions(parent=component)
    )
    return remote.image_id


def build(
    component: pulumi.ComponentResource, name: str, args: TomcatPoolArgs
) -> tuple[list[PoolMember], pulumi.Output[str]]:
    network = args.network.platform_network
    settings = args.cluster.app
    heartbeat = args.cluster.balancer.heartbeat
    admin_password = password(f"{name}-admin-password", args.admin_password, component)
    image = app_image(name, args, component)
    server_xml = render("server.xml", port=settings.port)
    members = []
    for index in range(settings.nodes):
        route = route_of(index)
        logical = f"{name}-{index + 1}"
        container = docker.Container(
            logical,
            name=network.container_name(logical),
            hostname=logical,
            image=image,
            envs=node_environment(args, route, admin_password),
            uploads=[docker.ContainerUploadArgs(file=SERVER_XML, content=server_xml)],
            mounts=[
                docker.ContainerMountArgs(type="volume", source=mount.source, target=mount.container_path)
                for mount in args.storage.mounts
            ],
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=network.private.name, ipv4_address=network.app_node_address(index)
                )
            ],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "curl", "-fsS", "-o", "/dev/null", f"http://localhost:{settings.port}{heartbeat.path}"],
                interval=f"{heartbeat.interval_seconds}s",
                timeout="5s",
                retries=heartbeat.fails,
                start_period=f"{settings.start_period_seconds}s",
            ),
            memory=settings.memory_mb,
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            restart="unless-stopped",
            # Tomcat lets running requests and the balancer's pooled connections finish (up to 5 s),
            # then OpenMRS shuts down; Docker's default of 10 s before SIGKILL can cut that short.
            stop_timeout=60,
            wait=True,
            wait_timeout=settings.start_period_seconds + 120,
            opts=pulumi.ResourceOptions(parent=component, depends_on=[args.storage]),
        )
        members.append(PoolMember(name=container.name, route=route, port=settings.port))
    return members, admin_password
