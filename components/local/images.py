"""Images the local platform builds from directories of this repository (or of the user's)."""
import hashlib
from pathlib import Path

import pulumi
import pulumi_docker as docker

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def context_digest(context: Path) -> str:
    """A digest of every file of a build context, so that a changed Dockerfile gives a new tag and new containers."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(path.relative_to(context).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def local_tag(context: str, repository: str) -> str:
    """The tag of `context` (relative to the project root) built as `repository`: its content's digest."""
    return f"{repository}:{context_digest(PROJECT_ROOT / context)}"


def build_image(name: str, context: str, repository: str, parent: pulumi.Resource) -> docker.Image:
    """Builds `context` (relative to the project root) into a local image tagged by the content's digest."""
    if not (PROJECT_ROOT / context / "Dockerfile").is_file():
        raise ValueError(f"{context} has no Dockerfile")
    return docker.Image(
        name,
        image_name=local_tag(context, repository),
        build=docker.DockerBuildArgs(context=context),
        skip_push=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )
