"""The AWS shared storage: one encrypted EFS file system, backed up, with an access point per shared folder."""
import pulumi
import pulumi_aws as aws

from ..shared_storage import DATA_DIRECTORY, OPENMRS_UID, SharedMount, SharedStorageArgs


def build(
    component: pulumi.ComponentResource, name: str, args: SharedStorageArgs
) -> tuple[list[SharedMount], aws.efs.FileSystem]:
    network = args.network.platform_network
    child = pulumi.ResourceOptions(parent=component)
    file_system = aws.efs.FileSystem(
        f"{name}-filesystem",
        encrypted=True,
        performance_mode="generalPurpose",
        throughput_mode="elastic",
        tags={"Name": f"{pulumi.get_stack()}-{name}"},
        opts=child,
    )
    aws.efs.BackupPolicy(
        f"{name}-backups",
        file_system_id=file_system.id,
        backup_policy=aws.efs.BackupPolicyBackupPolicyArgs(status="ENABLED"),
        opts=child,
    )
    for index, subnet in enumerate(network.private_subnet_ids):
        aws.efs.MountTarget(f"{name}-mount-{index + 1}", file_system_id=file_system.id, subnet_id=subnet,
                            security_groups=[network.storage_group.id], opts=child)
    mounts = []
    for folder in args.cluster.storage.shared_folders:
        access_point = aws.efs.AccessPoint(
            f"{name}-{folder}",
            file_system_id=file_system.id,
            posix_user=aws.efs.AccessPointPosixUserArgs(uid=OPENMRS_UID, gid=OPENMRS_UID),
            root_directory=aws.efs.AccessPointRootDirectoryArgs(
                path=f"/{folder}",
                creation_info=aws.efs.AccessPointRootDirectoryCreationInfoArgs(
                    owner_uid=OPENMRS_UID, owner_gid=OPENMRS_UID, permissions="750"
                ),
            ),
            opts=child,
        )
        mounts.append(SharedMount(source=access_point.id, container_path=f"{DATA_DIRECTORY}/{folder}"))
    return mounts, file_system
