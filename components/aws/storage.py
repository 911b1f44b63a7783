"""The AWS shared storage: one encrypted EFS file system, backed up, with an access point per shared folder."""
import json

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
        # In production the patients' files: a change that would replace (empty) the file system, or a
        # destroy, stops with Pulumi's protection error instead.
        opts=pulumi.ResourceOptions(parent=component, protect=args.cluster.aws.production),
    )
    # Every mount over TLS: the tasks mount with TLS and IAM, and a client without either is refused.
    aws.efs.FileSystemPolicy(
        f"{name}-tls-only",
        file_system_id=file_system.id,
        policy=file_system.arn.apply(lambda arn: json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "TlsOnly", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "*", "Resource": arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})),
        opts=child,
    )
    # AWS's default daily backup, unless the stack's own plan covers the file system (backups.py): not twice.
    aws.efs.BackupPolicy(
        f"{name}-backups",
        file_system_id=file_system.id,
        backup_policy=aws.efs.BackupPolicyBackupPolicyArgs(
            status="DISABLED" if args.cluster.backup.enabled else "ENABLED"),
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
