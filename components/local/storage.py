"""The local shared storage. Replicated (the default): a GlusterFS volume on three storage servers, two
holding the files and the third an arbiter, mounted once through FUSE by a client container and bound
into every node from the Docker host. Otherwise: a named volume per shared folder.

Why GlusterFS: DRBD needs a kernel module that containers cannot load. A replica-3-arbiter-1 volume keeps
the same promise with user-space servers from Debian: a write completes on both copies, the volume goes
on with any two of the three servers (the arbiter breaks ties, so there is no split brain), and a server
that comes back is healed by the others. The official OpenMRS image has no Gluster client, so one client
container mounts the volume and Docker shares its mount with the host (bind propagation rshared); the
Docker host's / must be a shared mount, as systemd makes it. On several hosts the servers are spread over
three machines, and every machine with app nodes has its own client (under a directory named after the host,
so that machines sharing a file system, as the simulated ones of the tests do, never share a mount point).
"""
import pulumi
import pulumi_docker as docker

from ..shared_storage import DATA_DIRECTORY, OPENMRS_UID, SharedMount, SharedStorageArgs
from . import images
from .certificates import TLS12_CIPHERS, Holder, certificate_volume, mount, rollout_step
from .network import (FIRST_STORAGE_CLIENT_HOST, HEALTH_CHECK_SECONDS, LOG_OPTIONS, METRICS_DIRECTORY, STORAGE_HOSTS,
                      LocalNetwork, Machine)

VOLUME = "openmrs"
# The names on the storage tier's certificates, and the only ones the bricks let in (auth.ssl-allow): the
# servers (whose self-heal daemons are clients too) and the clients, never a node's or a balancer's, which
# the same authority signs. GlusterFS checks a peer's chain and name, not its address.
SERVER_NAME, CLIENT_NAME = "openmrs-files-server", "openmrs-files-client"
BRICK = "/bricks/openmrs"
CLIENT_MOUNT_PARENT = "/mnt/cluster"  # the client mounts the volume at <parent>/files


def server_name(index: int) -> str:
    """How the monitoring names storage server `index`: its alerts, its dashboard row."""
    return f"files{index + 1}"


def build(component: pulumi.ComponentResource, name: str, args: SharedStorageArgs) -> tuple[list[SharedMount], None]:
    if args.cluster.storage.replicated:
        return replicated(component, name, args), None
    return volumes(component, name, args), None


def replicated(component: pulumi.ComponentResource, name: str, args: SharedStorageArgs) -> list[SharedMount]:
    network = args.network.platform_network
    storage = args.cluster.storage
    child = pulumi.ResourceOptions(parent=component)
    image = images.build_image(f"{name}-image", "images/glusterfs", "openmrs-cluster/glusterfs", component)
    addresses = [network.address(host) for host in STORAGE_HOSTS]
    # glusterd marks bricks with trusted.* extended attributes (SYS_ADMIN) and works on files of every
    # owner as root (CHOWN, DAC_OVERRIDE, FOWNER).
    server_capabilities = ["SYS_ADMIN", "CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"]
    # glusterd looks up a name for every peer's address; Docker's DNS knows only its own engine's
    # containers and asks outside for the others, which takes seconds per lookup on several hosts.
    known_servers = [docker.ContainerHostArgs(host=f"{name}-{index + 1}", ip=address) for index, address in enumerate(addresses)]
    servers, installed = [], []
    for index, address in enumerate(addresses):
        logical = f"{name}-{index + 1}"
        machine = network.machine_of("storage", index)
        options = network.options(machine, component)
        state = docker.Volume(f"{logical}-state", name=network.container_name(f"{logical}-state"), opts=options)
        brick = docker.Volume(f"{logical}-brick", name=network.container_name(f"{logical}-brick"), opts=options)
        image_ready = network.image_on(machine, f"{name}-image", image.image_name, image, component)
        holder, installed_here = certificate(component, network, args, logical, SERVER_NAME, machine, address,
                                             "glusterfs", image, image_ready, installed)
        installed.append(installed_here)
        first = index == 0
        envs = [f"VOLUME={VOLUME}"]
        if machine.metrics is not None:  # images/glusterfs/storage-metrics.py
            envs += [f"METRICS_FILE={METRICS_DIRECTORY}/storage-{server_name(index)}.prom",
                     f"SERVER={server_name(index)}",
                     "STORAGE_SERVERS=" + " ".join(f"{server_name(i)}={a}" for i, a in enumerate(addresses))]
        if first:  # the first server joins the others and creates the volume
            envs += [f"PEERS={' '.join(addresses[1:])}",
                     f"VOLUME_BRICKS={' '.join(f'{peer}:{BRICK}' for peer in addresses)}",
                     f"PING_TIMEOUT={storage.ping_timeout_seconds}",
                     f"SSL_ALLOW={SERVER_NAME},{CLIENT_NAME}", f"SSL_CIPHERS={TLS12_CIPHERS}"]
        ready = (f"gluster --mode=script volume info {VOLUME} | grep -q 'Status: Started'" if first
                 else "gluster --mode=script pool list >/dev/null")
        servers.append(docker.Container(
            logical,
            **network.identity(logical),
            image=image.image_name,
            command=["/usr/local/bin/storage-server"],
            envs=envs,
            volumes=[docker.ContainerVolumeArgs(volume_name=state.name, container_path="/var/lib/glusterd"),
                     docker.ContainerVolumeArgs(volume_name=brick.name, container_path="/bricks")],
            mounts=[mount("glusterfs", holder.volume), *network.metrics_mounts(machine)],
            networks_advanced=[network.attach(machine, address)],
            hosts=known_servers,
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", ready], interval=f"{HEALTH_CHECK_SECONDS}s", timeout="5s", retries=5,
                start_period="60s"),
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=server_capabilities),
            restart="unless-stopped",
            # Healthy: glusterd answers; on the first server, the volume has started too.
            wait=True,
            wait_timeout=180,
            log_opts=LOG_OPTIONS,
            opts=network.container_options(machine, component, depends_on=[installed_here, *image_ready]),
        ))

    base = docker.RemoteImage(f"{name}-base-image", name="debian:bookworm-slim", keep_locally=True, opts=child)
    client_machines = {network.machine_of("app", index).index: network.machine_of("app", index)
                       for index in range(args.cluster.app.nodes)}
    mounts = []
    for machine in client_machines.values():
        mounts += client(component, name, network, args, machine, image, base, servers, known_servers)
    return mounts


def certificate(component: pulumi.ComponentResource, network: LocalNetwork, args: SharedStorageArgs, logical: str,
                common_name: str, machine: Machine, address: str, kind: str, image: docker.Image,
                image_ready: list[pulumi.Resource], before: list[pulumi.Resource]) -> tuple[Holder, pulumi.Resource]:
    """A storage member's own certificate, in a volume of its own, and the step that fills it (renewing one
    member at a time, after the ones `before`)."""
    holder = Holder(logical, machine, certificate_volume(network, machine, logical, component), image_ready)
    issued = network.authority.issue(logical, common_name, [logical], [address], *args.cluster.tls.lifetime_hours,
                                     component)
    return holder, rollout_step(f"{logical}-certificate", kind, [holder], image.image_name, network,
                                issued.certificate_pem, issued.private_key_pem, component, depends_on=before[-1:])


def client(component: pulumi.ComponentResource, name: str, network: LocalNetwork, args: SharedStorageArgs,
           machine: Machine, image: docker.Image, base: docker.RemoteImage, servers: list[docker.Container],
           known_servers: list[docker.ContainerHostArgs]) -> list[SharedMount]:
    """The volume mounted on `machine`, and the folders its nodes bind from there."""
    storage = args.cluster.storage
    suffix = f"-{machine.host}" if machine.host else ""
    host_directory = f"{storage.host_directory}/{network.resource_prefix}" + (f"/{machine.host}" if machine.host else "")
    # Docker binds only an existing host directory with propagation options; this one-shot container,
    # a plain bind, makes it.
    directory = docker.Container(
        f"{name}-host-directory{suffix}",
        name=network.container_name(f"{name}-host-directory"),
        image=base.image_id,
        command=["mkdir", "-p", f"/host{host_directory}"],
        volumes=[docker.ContainerVolumeArgs(host_path=storage.host_directory, container_path=f"/host{storage.host_directory}")],
        network_mode="none",
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        must_run=False,
        attach=True,
        log_opts=LOG_OPTIONS,
        opts=network.container_options(machine, component,
                                       depends_on=network.image_on(machine, f"{name}-base-image", base.image_id, base,
                                                                   component)),
    )
    folders = storage.shared_folders
    logical = f"{name}-client"
    address = network.address(FIRST_STORAGE_CLIENT_HOST + machine.index)
    image_ready = network.image_on(machine, f"{name}-image", image.image_name, image, component)
    holder, installed = certificate(component, network, args, f"{logical}{suffix}", CLIENT_NAME, machine, address,
                                    "glusterfs-client", image, image_ready, [])
    client_ready = " && ".join([f"grep -q ' {CLIENT_MOUNT_PARENT}/files fuse.glusterfs ' /proc/mounts"]
                               + [f"test -d {CLIENT_MOUNT_PARENT}/files/{folder}" for folder in folders])
    docker.Container(
        f"{logical}{suffix}",
        **network.identity(logical),
        image=image.image_name,
        command=["/usr/local/bin/storage-mount"],
        envs=[f"VOLUME={VOLUME}", f"SERVERS={' '.join(network.address(host) for host in STORAGE_HOSTS)}",
              f"FOLDERS={' '.join(folders)}", f"OWNER={OPENMRS_UID}:0"],
        mounts=[docker.ContainerMountArgs(
                    type="bind", source=host_directory, target=CLIENT_MOUNT_PARENT,
                    bind_options=docker.ContainerMountBindOptionsArgs(propagation="rshared")),
                mount("glusterfs-client", holder.volume)],
        devices=[docker.ContainerDeviceArgs(host_path="/dev/fuse", container_path="/dev/fuse")],
        networks_advanced=[network.attach(machine, address)],
        hosts=known_servers,
        healthcheck=docker.ContainerHealthcheckArgs(
            tests=["CMD-SHELL", client_ready], interval=f"{HEALTH_CHECK_SECONDS}s", timeout="5s", retries=5,
            start_period="60s"),
        # Mounting needs SYS_ADMIN and, where AppArmor runs, a profile that allows mount; chown the folders.
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=["SYS_ADMIN", "CHOWN"]),
        security_opts=["apparmor=unconfined"],
        restart="unless-stopped",
        # A stop lets the client unmount; a kill would leave a dead mount on the host.
        destroy_grace_seconds=30,
        wait=True,
        wait_timeout=180,
        log_opts=LOG_OPTIONS,
        opts=network.container_options(machine, component, depends_on=[*servers, directory, installed, *image_ready]),
    )
    # Nodes bind the folders inside the mount; rslave: they see what the host sees.
    return [SharedMount(source=f"{host_directory}/files/{folder}", container_path=f"{DATA_DIRECTORY}/{folder}",
                        kind="bind", host=machine.host) for folder in folders]


def volumes(component: pulumi.ComponentResource, name: str, args: SharedStorageArgs) -> list[SharedMount]:
    network = args.network.platform_network
    child = pulumi.ResourceOptions(parent=component)
    folders = args.cluster.storage.shared_folders
    shared = {
        folder: docker.Volume(f"{name}-{folder}", name=network.container_name(f"{name}-{folder}"), opts=child)
        for folder in folders
    }
    # A new volume belongs to root; this one-shot container gives it to the OpenMRS user, then exits.
    base = docker.RemoteImage(f"{name}-base-image", name="debian:bookworm-slim", keep_locally=True, opts=child)
    docker.Container(
        f"{name}-ownership",
        name=network.container_name(f"{name}-ownership"),
        image=base.image_id,
        command=["chown", f"{OPENMRS_UID}:0"] + [f"/shared/{folder}" for folder in folders],
        volumes=[
            docker.ContainerVolumeArgs(volume_name=volume.name, container_path=f"/shared/{folder}")
            for folder, volume in shared.items()
        ],
        network_mode="none",
        must_run=False,
        attach=True,
        log_opts=LOG_OPTIONS,
        opts=network.container_options(network.machines[0], component),
    )
    return [SharedMount(source=volume.name, container_path=f"{DATA_DIRECTORY}/{folder}") for folder, volume in shared.items()]
