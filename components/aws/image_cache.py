"""aws.image_cache: an ECR pull-through cache in front of the registry that images named without a registry
come from (Docker Hub's), so that every task pulls from the account's own registry. ECR fetches an image
from upstream once, on its first pull, and serves it from then on: a deployment or a scale-out neither
waits for nor counts against Docker Hub's pull limits, and a cached digest stays pullable if upstream
removes it. Images named with another registry are pulled from it as they are."""
import re
from typing import Optional

import pulumi
import pulumi_aws as aws

from ..config.aws import ImageCache


def rule_prefix(cache: ImageCache) -> str:
    """aws.image_cache.prefix, or <stack>-hub: a rule's prefix is unique in the account's registry."""
    if cache.prefix is not None:
        return cache.prefix
    stack = re.sub(r"[^a-z0-9._-]+", "-", pulumi.get_stack().lower()).strip("-._")
    return f"{stack[:26].rstrip('-._')}-hub"


def _upstream_path(image: str, cache: ImageCache) -> Optional[str]:
    """The repository path (with its tag or digest) in the cached registry, or None for another registry's."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        if first != cache.upstream_registry_url:
            return None
        image = rest
    # Docker Hub's official images live under library/.
    return image if "/" in image else f"library/{image}"


def cached_reference(image: str, registry_host: str, cache: ImageCache) -> str:
    """How a task pulls `image` through the cache: <registry>/<prefix>/<repository>[:tag][@digest]."""
    path = _upstream_path(image, cache)
    return image if path is None else f"{registry_host}/{rule_prefix(cache)}/{path}"


def node_image(component: pulumi.ComponentResource, name: str, image: str, cache: ImageCache, region: str,
               registry: aws.ecr.Repository) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """The cache rule for the account's `registry`; returns how the tasks pull `image` through it and the IAM
    policy their execution role needs for that (ECR makes a cached repository on an image's first pull, in
    the pulling principal's name)."""
    rule = aws.ecr.PullThroughCacheRule(
        f"{name}-image-cache",
        ecr_repository_prefix=rule_prefix(cache),
        upstream_registry_url=cache.upstream_registry_url,
        credential_arn=cache.credentials_arn,
        opts=pulumi.ResourceOptions(parent=component),
    )
    policy = pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
        "Resource": pulumi.Output.format("arn:aws:ecr:{0}:{1}:repository/{2}/*", region, registry.registry_id,
                                         rule.ecr_repository_prefix),
    }]})
    # The rule exists before a task pulls through it.
    pulled = pulumi.Output.all(registry.repository_url, rule.ecr_repository_prefix).apply(
        lambda values: cached_reference(image, values[0].split("/", 1)[0], cache))
    return pulled, policy
