"""The local shared storage: a named volume per shared folder, handed to uid 1001 before any node starts."""
import pulumi
import pulumi_docker as docker

from ..shared_storage import DATA_DIRECTORY, OPENMRS_UID, SharedMount, SharedStorageArgs


def build(component: pulumi.ComponentResource, name: str, args: SharedStorageArgs) -> tuple[list[SharedMount], None]:
    network = args.network.platform_network
    child = pulumi.ResourceOptions(parent=component)
    folders = args.cluster.storage.shared_folders
    volumes = {
        folder: docker.Volume(
            f"{name}-{folder}", name=network.container_name(f"{name}-{folder}"), opts=child
        )
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
            for folder, volume in volumes.items()
        ],
        network_mode="none",
        must_run=False,
        attach=True,
        opts=child,
    )
    mounts = [
        SharedMount(source=volume.name, container_path=f"{DATA_DIRECTORY}/{folder}")
        for folder, volume in volumes.items()
    ]
    return mounts, None
