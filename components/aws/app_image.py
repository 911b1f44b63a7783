"""The images ECS tasks run. The app's: the configured image as it is, or, when the stack lists modules or
configuration, the release layer; the scheduler keeper's: built from images/scheduler-keeper. What is
built is built on the deploying machine and pushed to a private ECR repository of its own.

Tasks then pull a pushed image by its digest, so every task of a deployment runs the same bytes."""
import hashlib
import json
import os
from pathlib import Path
from typing import NamedTuple

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from ..checksums import PROJECT_ROOT, file_checksum, folder_checksum
from ..config import AppConfig
from ..release import Release

# Releases kept in the repository: the current one and enough earlier ones to roll back to.
KEPT_RELEASES = 10
KEEPER_CONTEXT = "images/scheduler-keeper"
# The keeper keeps no state: the current image and two earlier ones to roll back to are enough.
KEPT_KEEPER_IMAGES = 3


# aws.cpu_architecture -> the platform the images are built for.
PLATFORMS = {"X86_64": "linux/amd64", "ARM64": "linux/arm64"}


class PushedImage(NamedTuple):
    digest: pulumi.Output[str]  # the reference the tasks pull
    repository: aws.ecr.Repository


def tag_of(folder: Path) -> str:
    """A tag for a build context: its files' paths and contents, without Python's byte-code caches (which
    running the tests leaves there and no Dockerfile copies)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    listing = "".join(f"{p.relative_to(folder).as_posix()}\0{file_checksum(p)}\n" for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()[:12]


def pushed_image(name: str, repository_name: str, context: str, tag: str, kept: int, platform: str,
                 component: pulumi.ComponentResource, build_args: dict[str, str] | None = None) -> PushedImage:
    """Builds `context` (relative to the project root) for the tasks' `platform` and pushes it as `tag` to a
    repository of its own: tags immutable, since a tag names content; scanned on push; KMS-encrypted; the
    last `kept` images kept. Returns the digest reference the tasks pull, and the repository.

    An image for another architecture than x86 is tagged <tag>-<architecture>: the same content built for
    another platform is another image, and a repository's tags are immutable."""
    child = pulumi.ResourceOptions(parent=component)
    if platform != PLATFORMS["X86_64"]:
        tag = f"{tag}-{platform.rsplit('/', 1)[1]}"
    repository = aws.ecr.Repository(
        repository_name,
        image_tag_mutability="IMMUTABLE",
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
        encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")],
        opts=child,
    )
    aws.ecr.LifecyclePolicy(
        repository_name,
        repository=repository.name,
        policy=json.dumps({"rules": [{
            "rulePriority": 1,
            "description": f"keep the last {kept} releases",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": kept},
            "action": {"type": "expire"},
        }]}),
        opts=child,
    )
    credentials = aws.ecr.get_authorization_token_output(registry_id=repository.registry_id)
    image = docker.Image(
        name,
        image_name=pulumi.Output.concat(repository.repository_url, ":", tag),
        build=docker.DockerBuildArgs(context=context, args=build_args, platform=platform),
        registry=docker.RegistryArgs(
            server=repository.repository_url,
            username=credentials.user_name,
            password=pulumi.Output.secret(credentials.password),
        ),
        opts=child,
    )
    return PushedImage(image.repo_digest, repository)


def app_image(name: str, settings: AppConfig, platform: str,
              component: pulumi.ComponentResource) -> pulumi.Input[str] | None:
    """The release image the stack builds, or None when the tasks run the configured image as it is."""
    if not settings.modules and not settings.configuration:
        return None
    release = Release(base_image=settings.image, app=settings)
    return pushed_image(f"{name}-release", f"{name}-releases", os.path.relpath(release.stage(), PROJECT_ROOT),
                        release.digest, KEPT_RELEASES, platform, component, build_args=release.build_args).digest


def keeper_image(name: str, platform: str, component: pulumi.ComponentResource) -> PushedImage:
    """Tagged by its context's content: an unchanged keeper keeps its tag, so nothing is built or replaced."""
    tag = folder_checksum(PROJECT_ROOT / KEEPER_CONTEXT)[:12]
    return pushed_image(f"{name}-scheduler-keeper-image", f"{name}-scheduler-keeper-images", KEEPER_CONTEXT, tag,
                        KEPT_KEEPER_IMAGES, platform, component)
