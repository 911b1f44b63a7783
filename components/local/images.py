"""Images the local platform builds from directories of this repository (or of the user's)."""
import pulumi
import pulumi_docker as docker

from ..checksums import PROJECT_ROOT, build_digest


def local_tag(context: str, repository: str, build_args: dict[str, str] | None = None) -> str:
    """The tag of `context` (relative to the project root) built as `repository`: its content's digest."""
    return f"{repository}:{build_digest(PROJECT_ROOT / context, build_args)}"


def build_image(name: str, context: str, repository: str, parent: pulumi.Resource,
                build_args: dict[str, str] | None = None) -> docker.Image:
    """Builds `context` (relative to the project root) into a local image tagged by the content's digest."""
    if not (PROJECT_ROOT / context / "Dockerfile").is_file():
        raise ValueError(f"{context} has no Dockerfile")
    return docker.Image(
        name,
        image_name=local_tag(context, repository, build_args),
        build=docker.DockerBuildArgs(context=context, args=build_args),
        skip_push=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )
