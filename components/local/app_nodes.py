"""The local app nodes: one container per node on the private network, each with a fixed address.

Nodes are created and replaced one at a time, in a chain: drain node k from the balancer, replace its
container, wait until the balancer has it back, then node k+1. So the first node performs OpenMRS's
first-time setup alone, and a change of image, modules or configuration never has more than one node out.
The chain holds because each step depends on the one before (Pulumi registers a resource only once its
dependencies are done), and it is not cut short by delete-before-replace: the engine replaces dependents
with it only when they take one of its outputs as an input, and these take none.
"""
import hashlib
import json
import os

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from ..checksums import PROJECT_ROOT
from ..passwords import password
from ..release import Release
from ..render import render
from ..tomcat_pool import (
    JAVA_SERVER_OPTS, TOMCAT_KEEP_ALIVE_SECONDS, PoolMember, TomcatPoolArgs, cluster_cache_options, java_memory_options, route_of,
    search_environment,
)
from . import images
from .engines import STEP_INTERPRETER
from .network import HEALTH_CHECK_SECONDS, LOG_OPTIONS, LocalNetwork, Machine, readiness_check_interval

SERVER_XML = "/usr/local/tomcat/conf/server.xml"
# The stack's authority, with which a node checks the database servers' and the search servers' certificates.
AUTHORITY = "/openmrs/tls/authority.pem"
# TLS to the database, the server's certificate checked against the stack's authority and for its address:
# sslMode for Connector/J 3 (core 2.8 bundles 3.5.4), useSsl for 2.x, where it verifies the name by default
# (3.x reads useSsl as verify-full too); serverSslCert is the authority to trust in both.
DATABASE_TLS_ARGS = f"&sslMode=verify-full&useSsl=true&serverSslCert={AUTHORITY}"
# The search servers are reached over HTTPS by Hibernate Search's client, which trusts what the JVM trusts: as
# the official Helm chart does for its Elasticsearch (an init container and JAVA_TOOL_OPTIONS), each node
# starts from a copy of the JVM's own trust store with the stack's authority added, and the JVM is told to use
# it. The store holds public certificates only; its password is keytool's well-known default.
TRUST_STORE = "/tmp/openmrs-cluster-truststore"
TRUST_STORE_OPTIONS = f"-Djavax.net.ssl.trustStore={TRUST_STORE} -Djavax.net.ssl.trustStorePassword=changeit"
# keytool takes one certificate per alias: the file holds two while one authority replaces another.
TRUST_THEN_START = (
    'java_home=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")") && '
    f'cp "$java_home/lib/security/cacerts" {TRUST_STORE} && chmod u+w {TRUST_STORE} && '
    f"awk '/BEGIN CERTIFICATE/ {{n++}} {{print > (\"/tmp/openmrs-cluster-authority-\" n \".pem\")}}' {AUTHORITY} && "
    "for pem in /tmp/openmrs-cluster-authority-*.pem; do "
    f'keytool -importcert -noprompt -alias "$(basename "$pem" .pem)" -file "$pem" -keystore {TRUST_STORE} '
    "-storepass changeit >/dev/null || exit 1; done && exec /openmrs/startup.sh")
# Where the balancers and the scheduler keeper reach a node: TLS, the node's certificate (from the stack's
# authority, for its route as a host name and its address) checked; app.port stays on the node's loopback.
NODE_TLS_PORT = 8443
NODE_CERTIFICATE, NODE_PRIVATE_KEY = "/usr/local/tomcat/conf/tls/certificate.pem", "/usr/local/tomcat/conf/tls/private-key.pem"
KEEPER_AUTHORITY = "/etc/scheduler-keeper/authority.pem"
APP_REPOSITORY = "openmrs-cluster/app"


# The name that answers with every node's address: what the clustered caches' DNS_PING asks to find the
# others (it resolves A records through the system's resolver, InetAddress.getAllByName, so /etc/hosts
# answers first), and the scheduler keeper too. Written into each container's /etc/hosts rather than left to
# Docker's DNS, which knows only the containers of its own engine, not those of the other hosts.
DISCOVERY_NAME = "app-nodes"


def node_environment(args: TomcatPoolArgs, route: str, admin_password: pulumi.Output[str]) -> list:
    """The official image's OMRS_* contract, in cluster mode (module web administration off, caches
    clustered, the search index shared)."""
    database = args.database
    host_and_port = database.writer_endpoint.apply(lambda endpoint: endpoint.rsplit(":", 1))
    return [
        "OMRS_DB=mariadb",
        pulumi.Output.concat("OMRS_DB_HOSTNAME=", host_and_port[0]),
        pulumi.Output.concat("OMRS_DB_PORT=", host_and_port[1]),
        pulumi.Output.concat("OMRS_DB_NAME=", database.database),
        pulumi.Output.concat("OMRS_DB_USERNAME=", database.user),
        pulumi.Output.concat("OMRS_DB_PASSWORD=", database.password),
        f"OMRS_DB_EXTRA_ARGS={DATABASE_TLS_ARGS}",
        pulumi.Output.concat("OMRS_ADMIN_USER_PASSWORD=", admin_password),
        "OMRS_MODULE_WEB_ADMIN=false",
        f"OMRS_JAVA_SERVER_OPTS={JAVA_SERVER_OPTS} {cluster_cache_options(DISCOVERY_NAME)} {TRUST_STORE_OPTIONS} "
        f"-DjvmRoute={route}",
        f"OMRS_JAVA_MEMORY_OPTS={java_memory_options(args.cluster.app.max_ram_percent)}",
        *(pulumi.Output.concat(key, "=", value) for key, value in search_environment(args.search).items()),
        pulumi.Output.concat("OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_PASSWORD=", args.search.password),
    ]


def discovery_hosts(network: LocalNetwork, nodes: int) -> list[docker.ContainerHostArgs]:
    return [docker.ContainerHostArgs(host=DISCOVERY_NAME, ip=network.app_node_address(index)) for index in range(nodes)]


def app_image(name: str, args: TomcatPoolArgs,
              component: pulumi.ComponentResource) -> tuple[pulumi.Output[str], pulumi.Resource]:
    """The user's own build of the app (app.build) or the configured image, with the release layer on top
    when the stack lists modules or configuration; and the resource that makes it."""
    settings = args.cluster.app
    if settings.build:
        base = images.build_image(f"{name}-image", settings.build, APP_REPOSITORY, component)
        base_reference, base_image = images.local_tag(settings.build, APP_REPOSITORY), base.image_name
    else:
        base = docker.RemoteImage(
            f"{name}-image", name=settings.image, keep_locally=True, opts=pulumi.ResourceOptions(parent=component)
        )
        base_reference, base_image = settings.image, base.image_id
    if not settings.modules and not settings.configuration:
        return base_image, base
    release = Release(base_image=base_reference, app=settings)
    layered = docker.Image(
        f"{name}-release",
        image_name=f"{APP_REPOSITORY}-release:{release.digest}",
        build=docker.DockerBuildArgs(context=os.path.relpath(release.stage(), PROJECT_ROOT), args=release.build_args),
        skip_push=True,
        opts=pulumi.ResourceOptions(parent=component, depends_on=[base]),
    )
    return layered.image_name, layered


ROLLOUT_INTERPRETER = [*STEP_INTERPRETER, "components.local.rollout"]


def spec_digest(container_args: dict) -> pulumi.Output[str]:
    """A digest of a node container's arguments, so that its drain and admit steps run whenever it is replaced
    (and, harmlessly, when an argument the provider changes in place changes); secrets stay inside the hash."""
    return pulumi.Output.from_input(container_args).apply(
        lambda values: hashlib.sha256(json.dumps(values, sort_keys=True, default=vars).encode()).hexdigest()
    )


def rollout_settings(manager, balancer_name: str, machine: Machine, route: str, port: int, container_name: str,
                     drain_seconds: int, heartbeat) -> dict[str, pulumi.Input[str]]:
    """What a member's drain and admit steps need (components/local/rollout.py): the balancers' managers, the
    member as they know it, and its container."""
    return {
        "ROLLOUT_BALANCER_CONTAINERS": pulumi.Output.all(*manager.container_names).apply(",".join),
        # How to reach each balancer's engine and the member's (secret: a tcp:// engine's key is in them).
        "ROLLOUT_BALANCER_ENGINES": pulumi.Output.secret(json.dumps(manager.engines)),
        "ROLLOUT_NODE_ENGINE": pulumi.Output.secret(machine.engine.to_json()),
        "ROLLOUT_BALANCER_NAME": balancer_name,
        "ROLLOUT_BALANCER_KIND": manager.kind,
        "ROLLOUT_WORKER_URL": f"https://{route}:{port}",
        "ROLLOUT_ROUTE": route,
        "ROLLOUT_NODE_CONTAINER": container_name,
        "ROLLOUT_DRAIN_SECONDS": str(drain_seconds),
        # The member is already healthy when this runs; the balancer needs `passes` heartbeats more.
        "ROLLOUT_ADMIT_SECONDS": str(heartbeat.interval_seconds * (heartbeat.passes + 2) + 30),
        "ROLLOUT_SETTLE_SECONDS": str(manager.settle_seconds),
    }


def replaced_in_turn(component: pulumi.ComponentResource, network: LocalNetwork, machine: Machine, logical: str,
                     container_args: dict, rollout: dict, previous_step: pulumi.Resource,
                     depends_on: list[pulumi.Resource]) -> tuple[docker.Container, command.local.Command]:
    """A balancer member's container, drained from the balancers before it is replaced and admitted back once
    it serves, after `previous_step`; returns it and its admit step, which the next member waits for.

    Drain and admit run with the same settings and triggers, so a member is never left drained; the triggers
    cover every argument of the container, so that no change replaces a member undrained."""
    triggers = [spec_digest(container_args)]
    step = pulumi.ResourceOptions(parent=component)
    drain = command.local.Command(
        f"{logical}-drain", create="drain", interpreter=ROLLOUT_INTERPRETER, dir=str(PROJECT_ROOT),
        environment=rollout, triggers=triggers,
        opts=pulumi.ResourceOptions.merge(step, pulumi.ResourceOptions(depends_on=[previous_step])),
    )
    container = docker.Container(
        logical,
        **network.identity(logical),
        **container_args,
        # Its fixed name and address must be free before the new container can exist.
        opts=network.container_options(machine, component, depends_on=[drain, *depends_on]),
    )
    admit = command.local.Command(
        f"{logical}-admit", create="admit", interpreter=ROLLOUT_INTERPRETER, dir=str(PROJECT_ROOT),
        environment=rollout, triggers=triggers,
        opts=pulumi.ResourceOptions.merge(step, pulumi.ResourceOptions(depends_on=[container])),
    )
    return container, admit


def build(
    component: pulumi.ComponentResource, name: str, args: TomcatPoolArgs
) -> tuple[list[PoolMember], pulumi.Output[str]]:
    network = args.network.platform_network
    settings = args.cluster.app
    heartbeat = args.cluster.balancer.heartbeat
    admin_password = password(f"{name}-admin-password", args.admin_password, component)
    image, image_made_by = app_image(name, args, component)
    server_xml = render("server.xml", port=settings.port, tls_port=NODE_TLS_PORT, keep_alive_seconds=TOMCAT_KEEP_ALIVE_SECONDS,
                        certificate_file=NODE_CERTIFICATE, private_key_file=NODE_PRIVATE_KEY)
    tls = args.cluster.tls
    manager = args.balancer.membership
    # Each node waits for the one before it to be back in the balancer; the first waits for the balancer.
    previous_step: pulumi.Resource = args.balancer
    members = []
    for index in range(settings.nodes):
        route = route_of(index)
        logical = f"{name}-{index + 1}"
        machine = network.machine_of("app", index)
        address = network.app_node_address(index)
        environment = node_environment(args, route, admin_password)
        issued = network.authority.issue(logical, route, [route], [address], *tls.lifetime_hours, component)
        mounts = [
            docker.ContainerMountArgs(
                type=mount.kind, source=mount.source, target=mount.container_path,
                bind_options=docker.ContainerMountBindOptionsArgs(propagation="rslave") if mount.kind == "bind" else None)
            for mount in args.storage.mounts if mount.host == machine.host
        ]
        rollout = rollout_settings(manager, manager.balancer_name, machine, route, NODE_TLS_PORT,
                                   network.container_name(logical), settings.drain_seconds, heartbeat)
        container_args = dict(
            log_opts=LOG_OPTIONS,
            image=image,
            command=["/bin/sh", "-c", TRUST_THEN_START],
            envs=environment,
            # A renewed certificate is a changed argument: the node is drained and replaced, as in any update.
            uploads=[docker.ContainerUploadArgs(file=SERVER_XML, content=server_xml),
                     docker.ContainerUploadArgs(file=NODE_CERTIFICATE, content=issued.certificate_pem),
                     docker.ContainerUploadArgs(file=NODE_PRIVATE_KEY, content=issued.private_key_pkcs8_pem),
                     docker.ContainerUploadArgs(file=AUTHORITY, content=network.trusted_pem)],
            mounts=mounts,
            networks_advanced=[network.attach(machine, address)],
            hosts=discovery_hosts(network, settings.nodes),
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "curl", "-fsS", "-o", "/dev/null", f"http://localhost:{settings.port}{heartbeat.path}"],
                interval=readiness_check_interval(heartbeat.interval_seconds),
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
            destroy_grace_seconds=60,  # replaced or removed with a graceful stop, not a kill
            wait=True,
            wait_timeout=settings.start_period_seconds + 120,
        )
        container, previous_step = replaced_in_turn(
            component, network, machine, logical, container_args, rollout, previous_step,
            depends_on=[args.storage, *network.image_on(machine, f"{name}-image", image, image_made_by, component)])
        members.append(PoolMember(name=container.name, route=route, port=NODE_TLS_PORT))
    scheduler_keeper(component, name, args, admin_password, depends_on=previous_step)
    return members, admin_password


def scheduler_keeper(component: pulumi.ComponentResource, name: str, args: TomcatPoolArgs,
                     admin_password: pulumi.Output[str], depends_on: pulumi.Resource) -> docker.Container:
    """Core 2.8 runs each start-on-startup task on every node; the keeper moves them onto one node
    (images/scheduler-keeper/keeper.py), asking each node directly on the private network as admin, over TLS."""
    network = args.network.platform_network
    settings = args.cluster.app
    image = images.build_image(f"{name}-keeper-image", "images/scheduler-keeper", "openmrs-cluster/scheduler-keeper",
                               component)
    logical = f"{name}-scheduler-keeper"
    # Beside the last node: the keeper puts the tasks on the first, so one machine's loss never takes both.
    machine = network.machine_of("app", settings.nodes - 1)
    return docker.Container(
        logical,
        **network.identity(logical),
        image=image.image_name,
        envs=[f"DISCOVERY_NAME={DISCOVERY_NAME}", f"NODE_PORT={NODE_TLS_PORT}", f"CONTEXT_PATH={settings.context_path}",
              f"TLS_AUTHORITY={KEEPER_AUTHORITY}",
              "OPENMRS_USER=admin", pulumi.Output.concat("OPENMRS_PASSWORD=", admin_password),
              f"POLL_SECONDS={settings.scheduler.poll_seconds}", f"GRACE_SECONDS={settings.scheduler.grace_seconds}"],
        uploads=[docker.ContainerUploadArgs(file=KEEPER_AUTHORITY, content=network.trusted_pem)],
        networks_advanced=[network.attach(machine)],
        hosts=discovery_hosts(network, settings.nodes),
        healthcheck=docker.ContainerHealthcheckArgs(
            tests=["CMD", "python3", "/usr/local/bin/scheduler-keeper", "--check"],
            interval=f"{HEALTH_CHECK_SECONDS}s", timeout="5s", retries=3,
            start_period=f"{settings.scheduler.poll_seconds * 3}s",
        ),
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        restart="unless-stopped",
        wait=True,
        wait_timeout=settings.scheduler.poll_seconds * 6 + 60,
        # Removed before its successor takes its fixed name: the seconds without a keeper only delay a move.
        log_opts=LOG_OPTIONS,
        opts=network.container_options(machine, component, depends_on=[
            depends_on, *network.image_on(machine, f"{name}-keeper-image", image.image_name, image, component)]),
    )
