"""StaticContentTier: the O3 user interface, a built single-page application that never needs Tomcat, served
apart from it under <context path>/spa/ on the same host name as the backend.

Locally, static servers behind the balancers (which send the rest of the context path to the nodes); on
AWS, a private S3 bucket behind CloudFront, whose second origin is the ALB. The application is built from
the npm registry once per digest of its inputs (frontend.* and the image's build context)."""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import pulumi

from .config import ClusterConfig
from .load_balancer_tier import LoadBalancerTier
from .network import ClusterNetwork
from .platforms import implementation


@dataclass
class StaticContentTierArgs:
    cluster: ClusterConfig
    network: ClusterNetwork
    balancer: LoadBalancerTier


class StaticContentTierOutputs(NamedTuple):
    # Where a clinician opens the application: its login page.
    url: pulumi.Output[str]
    # Where the whole site answers (<context path>/): the balancers locally; on AWS, CloudFront, the ALB's one client.
    site_url: pulumi.Output[str]
    # The digest of what the application was built from (modules, versions, tooling): a new one, a new build.
    build: str


class StaticContentTier(pulumi.ComponentResource):
    url: pulumi.Output[str]
    site_url: pulumi.Output[str]
    build: str

    def __init__(self, name: str, args: StaticContentTierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:StaticContentTier", name, None, opts)
        outputs = implementation(args.cluster.platform, "static_content").build(self, name, args)
        self.url, self.site_url, self.build = outputs
        self.register_outputs(outputs._asdict())
