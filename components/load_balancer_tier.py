"""LoadBalancerTier: the one way in, spreading requests over the pool with sticky sessions and heartbeats.

It is created before the pool and owns the membership rules (members, health checks, stickiness,
scheduling); the TomcatPool's nodes then join it. On AWS this order is required: ECS refuses a service
whose target group no load balancer uses yet. On the local platform balancer.engine chooses it: the program's
own Apache pair (local/load_balancer.py) or HAProxy pair (local/haproxy_balancer.py), or the site's own, which the
program describes (local/external_balancer.py)."""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import pulumi

from .config import ClusterConfig
from .network import ClusterNetwork
from .platforms import implementation

# The configured scheduling, in Apache's words.
APACHE_LBMETHODS = {"round_robin": "byrequests", "by_busyness": "bybusyness"}


@dataclass
class LoadBalancerTierArgs:
    cluster: ClusterConfig
    network: ClusterNetwork
    # Local: the site's own certificate chain and key (secrets); None, the stack's authority signs one.
    site_certificate: Optional[tuple[pulumi.Output[str], pulumi.Output[str]]] = None


class LoadBalancerOutputs(NamedTuple):
    """What each platform's and engine's module builds."""

    urls: list[pulumi.Output[str]]
    membership: object
    authority_certificate: Optional[pulumi.Output[str]]
    # balancer.engine external: what the site's own balancer needs, and the same as an AS3 declaration (a secret:
    # it holds the site's private key).
    external: Optional[pulumi.Output[dict]] = None
    as3_declaration: Optional[pulumi.Output[str]] = None


class LoadBalancerTier(pulumi.ComponentResource):
    url: pulumi.Output[str]
    # Every way in: the ALB on AWS; on local, each balancer's own host port (the first is `url`).
    urls: list[pulumi.Output[str]]
    # What the pool's nodes join: on local, the balancer-manager that drains and re-admits members (they
    # are the nodes' fixed addresses); on AWS, the target group and its listeners.
    membership: object
    # The certificate clients must trust to check the balancers' (PEM): the stack's own authority on local,
    # when it signed the site's certificate; None where a public one serves (AWS) or the site gave its own.
    authority_certificate: Optional[pulumi.Output[str]]
    # balancer.engine external: the members, health check and stickiness the site's own balancer must follow,
    # and its AS3 declaration (F5 BIG-IP); {} and "" otherwise.
    external: pulumi.Output[dict]
    as3_declaration: pulumi.Output[str]

    def __init__(self, name: str, args: LoadBalancerTierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:LoadBalancerTier", name, None, opts)
        engine = args.cluster.balancer.engine
        built = implementation(args.cluster.platform, "load_balancer" if engine == "apache" else f"{engine}_balancer"
                               ).build(self, name, args)
        self.urls, self.membership, self.authority_certificate = built.urls, built.membership, built.authority_certificate
        self.url = self.urls[0]
        self.external = built.external or pulumi.Output.from_input({})
        self.as3_declaration = built.as3_declaration or pulumi.Output.from_input("")
        # Registered on every platform ("" where clients need nothing more to trust).
        self.register_outputs({"url": self.url, "urls": self.urls,
                               "authority_certificate": self.authority_certificate or "",
                               "external": self.external, "as3_declaration": self.as3_declaration})
