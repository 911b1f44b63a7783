"""Local backups: an agent beside each database server and one for the shared files (images/mariadb's
backup-agent.py), each in its own container of the database image (mariadb-backup, restic), with no
capability and no port.

Two restic repositories, encrypted with one generated key: the database's (full backups and the binary logs)
and the files', on Docker volumes of the first machine (kept when the stack is destroyed) or under backup.s3's
bucket. Two, not one, because
restic keeps a repository's files readable by their writer alone, and the agents run as different users: the
database's as mysql (it reads the data directory, mounted read-only), the files' as OpenMRS's own user (it
reads the shared folders, mounted read-only), so that neither needs a capability to read what it backs up.
With backup.s3 each agent also joins a network of its machine with a way out, as the private one has none."""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from ..backups import BackupsArgs, BackupsOutputs
from ..passwords import password
from ..shared_storage import DATA_DIRECTORY, OPENMRS_UID
from .database import LocalDatabase
from .network import FIRST_BACKUP_HOST, LOG_OPTIONS, METRICS_DIRECTORY, LocalNetwork, Machine

AGENT = "/usr/local/bin/backup-agent"
STATE = "/var/lib/openmrs-backup"  # images/mariadb/Dockerfile makes it the mysql user's
REPOSITORY = "/srv/openmrs-backup"  # …/database (mysql's) and …/files (OpenMRS's user's), on volumes
AUTHORITY = f"{STATE}-tls/authority.pem"
# Beside a server's own id (1, 2) and the replicas': the id each agent reads a server's binary log with.
STREAM_SERVER_ID = 100


def build(component: pulumi.ComponentResource, name: str, args: BackupsArgs) -> BackupsOutputs:
    network: LocalNetwork = args.network.platform_network
    database: LocalDatabase = args.database.platform_database
    settings = args.cluster.backup
    key = password(f"{name}-repository-key", None, component)
    repositories = {kind: _repository(component, network, name, kind, args) for kind in ("database", "files")}
    egress: dict[int, docker.Network] = {}

    def networks(machine: Machine, address: str) -> list[docker.ContainerNetworksAdvancedArgs]:
        attached = [network.attach(machine, address)]
        if settings.s3 is not None:
            if machine.index not in egress:
                egress[machine.index] = docker.Network(
                    f"{name}-egress-{machine.index}", name=network.container_name(f"{name}-egress-{machine.index}"),
                    driver="bridge", opts=network.options(machine, component))
            attached.append(docker.ContainerNetworksAdvancedArgs(name=egress[machine.index].name))
        return attached

    common = [
        pulumi.Output.concat("RESTIC_PASSWORD=", key),
        f"RETENTION_DAYS={settings.retention_days}",
        f"FULL_EVERY_HOURS={settings.full_every_hours}",
        f"SHIP_EVERY_SECONDS={settings.ship_every_seconds}",
        f"FILES_EVERY_MINUTES={settings.files_every_minutes}",
        *_s3_environment(args),
    ]
    for index, server in enumerate(database.servers):
        logical = f"{name}-{server.logical_name}"
        state = docker.Volume(f"{logical}-state", name=network.container_name(f"{logical}-state"),
                              opts=network.options(server.machine, component))
        docker.Container(
            logical,
            **network.identity(logical),
            image=database.image_name,
            entrypoints=[AGENT],
            command=["run"],
            user="mysql",
            envs=[*common, "BACKUP_KIND=database", f"SERVER_NAME={server.logical_name}",
                  *metrics_environment(network, server.machine, server.logical_name),
                  f"RESTIC_REPOSITORY={repositories['database'][0]}",
                  f"DB_HOST={server.address}", "DB_USER=backup", f"DB_TLS_CA={AUTHORITY}",
                  pulumi.Output.concat("MYSQL_PWD=", database.backup_password),
                  f"STREAM_SERVER_ID={STREAM_SERVER_ID + index}", f"MAKE_REPOSITORY={int(index == 0)}"],
            uploads=[docker.ContainerUploadArgs(file=AUTHORITY, content=network.trusted_pem)],
            volumes=[docker.ContainerVolumeArgs(volume_name=server.data.name, container_path="/var/lib/mysql",
                                                read_only=True),
                     docker.ContainerVolumeArgs(volume_name=state.name, container_path=STATE),
                     *repositories["database"][1]],
            mounts=network.metrics_mounts(server.machine),
            networks_advanced=networks(server.machine, server.backup_agent_address),
            healthcheck=_health(settings.ship_every_seconds),
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            restart="unless-stopped",
            log_opts=LOG_OPTIONS,
            opts=network.container_options(server.machine, component,
                                           depends_on=[server.container, *database.image_on(server.machine)]),
        )

    # Beside the first node, whose machine mounts the shared folders.
    machine = network.machine_of("app", 0)
    folders = [mount for mount in args.storage.mounts if mount.host == machine.host]
    files_agent = f"{name}-files"
    docker.Container(
        files_agent,
        **network.identity(files_agent),
        image=database.image_name,
        entrypoints=[AGENT],
        command=["run"],
        user=f"{OPENMRS_UID}:{OPENMRS_UID}",
        envs=[*common, "BACKUP_KIND=files", f"BACKUP_STATE={REPOSITORY}/files-state", "MAKE_REPOSITORY=1",
              f"RESTIC_REPOSITORY={repositories['files'][0]}", f"FILES_ROOT={DATA_DIRECTORY}",
              f"FOLDERS={','.join(mount.folder for mount in folders)}", *metrics_environment(network, machine, "files")],
        mounts=[*(docker.ContainerMountArgs(
            type=mount.kind, source=mount.source, target=mount.container_path, read_only=True,
            bind_options=docker.ContainerMountBindOptionsArgs(propagation="rslave") if mount.kind == "bind" else None)
            for mount in folders), *network.metrics_mounts(machine)],
        volumes=repositories["files"][1],
        networks_advanced=networks(machine, network.address(FIRST_BACKUP_HOST + len(database.servers))),
        healthcheck=_health(settings.files_every_minutes * 60),
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        restart="unless-stopped",
        log_opts=LOG_OPTIONS,
        opts=network.container_options(machine, component, depends_on=[args.storage, *database.image_on(machine)]),
    )
    location = repositories["database"][0].rsplit("/", 1)[0] if settings.s3 else \
        f"volumes {', '.join(network.container_name(f'{name}-{kind}') for kind in ('database', 'files'))}"
    return BackupsOutputs(location=pulumi.Output.from_input(location), retention_days=settings.retention_days)


def _repository(component: pulumi.ComponentResource, network: LocalNetwork, name: str, kind: str,
                args: BackupsArgs) -> tuple[str, list[docker.ContainerVolumeArgs]]:
    """Where `kind`'s repository is (restic's RESTIC_REPOSITORY) and the volume it needs, if any."""
    s3 = args.cluster.backup.s3
    if s3 is not None:
        return f"s3:{s3.endpoint}/{s3.bucket}/{kind}", []
    volume = docker.Volume(f"{name}-{kind}", name=network.container_name(f"{name}-{kind}"),
                           opts=network.options(network.machines[0], component, retain_on_delete=True))
    return f"{REPOSITORY}/{kind}", [docker.ContainerVolumeArgs(volume_name=volume.name,
                                                               container_path=f"{REPOSITORY}/{kind}")]


def metrics_environment(network: LocalNetwork, machine: Machine, agent: str) -> list[str]:
    """Where the agent writes its last successes and failures for the machine's node exporter, with monitoring
    on: backup-<agent>.prom."""
    return [f"METRICS_FILE={METRICS_DIRECTORY}/backup-{agent}.prom"] if machine.metrics is not None else []


def _s3_environment(args: BackupsArgs) -> list[pulumi.Input[str]]:
    s3 = args.cluster.backup.s3
    if s3 is None:
        return []
    return [f"AWS_ACCESS_KEY_ID={s3.access_key_id}", pulumi.Output.concat("AWS_SECRET_ACCESS_KEY=", args.s3_secret_key),
            *([f"AWS_DEFAULT_REGION={s3.region}"] if s3.region else [])]


def _health(interval_seconds: int) -> docker.ContainerHealthcheckArgs:
    """Unhealthy once a backup failed or is overdue (backup-agent check); the first may take a while."""
    return docker.ContainerHealthcheckArgs(tests=["CMD", AGENT, "check"], interval="30s", timeout="10s", retries=2,
                                           start_period=f"{max(60, min(interval_seconds, 3600))}s")
