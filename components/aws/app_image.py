"""The image ECS tasks run: the configured image as it is, or, when the stack lists modules or
configuration, the release layer built on the deploying machine and pushed to a private ECR repository.

Tasks then pull the release by its digest, so every task of a deployment runs the same bytes."""
import json
import os

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from ..checksums import PROJECT_ROOT
from ..config import AppConfig
from ..release import Release

# Releases kept in the repository: the current one and enough earlier ones to roll back to.
KEPT_RELEASES = 10


def app_image(name: str, settings: AppConfig, component: pulumi.ComponentResource) -> pulumi.Input[str]:
    if not settings.modules and not settings.configuration:
        return settings.image
    child = pulumi.ResourceOptions(parent=component)
    repository = aws.ecr.Repository(
        f"{name}-releases",
        image_tag_mutability="IMMUTABLE",
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
        encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")],
        opts=child,
    )
    aws.ecr.LifecyclePolicy(
        f"{name}-releases",
        repository=repository.name,
        policy=json.dumps({"rules": [{
            "rulePriority": 1,
            "description": f"keep the last {KEPT_RELEASES} releases",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEPT_RELEASES},
            "action": {"type": "expire"},
        }]}),
        opts=child,
    )
    credentials = aws.ecr.get_authorization_token_output(registry_id=repository.registry_id)
    release = Release(base_image=settings.image, app=settings)
    image = docker.Image(
        f"{name}-release",
        image_name=pulumi.Output.concat(repository.repository_url, ":", release.digest),
        build=docker.DockerBuildArgs(
            context=os.path.relpath(release.stage(), PROJECT_ROOT), args=release.build_args, platform="linux/amd64"),
        registry=docker.RegistryArgs(
            server=repository.repository_url,
            username=credentials.user_name,
            password=pulumi.Output.secret(credentials.password),
        ),
        opts=child,
    )
    return image.repo_digest
