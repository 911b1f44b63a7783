"""The local database: two MariaDB 10.11 containers, a GTID primary and its read-only replica."""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from ..mysql_pair import MySQLPairArgs, MySQLPairOutputs
from ..passwords import password
from ..render import render
from . import images
from .network import DATABASE_HOSTS

MYSQL_PORT = 3306
CONFIG_FILE = "/etc/mysql/mariadb.conf.d/90-openmrs-cluster.cnf"
# Enough for 16 nodes at the 50 connections of OpenMRS's c3p0 pool, and the replication threads.
MAX_CONNECTIONS = 850


def build(component: pulumi.ComponentResource, name: str, args: MySQLPairArgs) -> MySQLPairOutputs:
    network = args.network.platform_network
    settings = args.cluster.database
    child = pulumi.ResourceOptions(parent=component)
    root_password = password(f"{name}-root-password", args.passwords.get("database_root_password"), component)
    app_password = password(f"{name}-password", args.passwords.get("database_password"), component)
    replication_password = password(
        f"{name}-replication-password", args.passwords.get("database_replication_password"), component
    )
    image = images.build_image(f"{name}-image", "images/mariadb", "openmrs-cluster/mariadb", component)

    def server(role: str, server_id: int, primary: docker.Container | None = None) -> docker.Container:
        logical = f"{name}-{role}"
        data = docker.Volume(f"{logical}-data", name=network.container_name(f"{logical}-data"), opts=child)
        envs = [
            pulumi.Output.concat("MARIADB_ROLE=", role),
            pulumi.Output.concat("MARIADB_DATABASE=", settings.name),
            pulumi.Output.concat("MARIADB_USER=", settings.user),
            pulumi.Output.concat("MARIADB_PASSWORD=", app_password),
            pulumi.Output.concat("MARIADB_ROOT_PASSWORD=", root_password),
            pulumi.Output.concat("MARIADB_REPLICATION_USER=", "replication"),
            pulumi.Output.concat("MARIADB_REPLICATION_PASSWORD=", replication_password),
        ]
        if primary is not None:
            envs.append(pulumi.Output.concat("MARIADB_PRIMARY_HOST=", primary.name))
        return docker.Container(
            logical,
            **network.identity(logical),
            image=image.image_name,
            envs=envs,
            uploads=[
                docker.ContainerUploadArgs(
                    file=CONFIG_FILE,
                    content=render("my.cnf", role=role, server_id=server_id, max_connections=MAX_CONNECTIONS),
                )
            ],
            volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path="/var/lib/mysql")],
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=network.private.name, ipv4_address=network.address(DATABASE_HOSTS[role])
                )
            ],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "/usr/local/bin/mariadb-healthcheck"],
                interval="5s",
                timeout="5s",
                retries=6,
                start_period="120s",
            ),
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            restart="unless-stopped",
            wait=True,
            wait_timeout=300,
            opts=child,
        )

    primary = server("primary", 1)
    replica = server("replica", 2, primary=primary)
    return MySQLPairOutputs(
        writer_endpoint=pulumi.Output.format("{0}:{1}", primary.name, MYSQL_PORT),
        reader_endpoint=pulumi.Output.format("{0}:{1}", replica.name, MYSQL_PORT),
        database=pulumi.Output.from_input(settings.name),
        user=pulumi.Output.from_input(settings.user),
        password=app_password,
    )
