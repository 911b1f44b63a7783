"""SearchTier: the search index that every node shares, so that a patient registered through one node is
found through every other (core 2.8's Hibernate Search on Elasticsearch, instead of a Lucene index per node).

Made by the stack (search containers locally, an Amazon OpenSearch Service domain on AWS), or, with
search.uris, an existing cluster that the nodes use as it is.
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import pulumi

from .config import ClusterConfig
from .network import ClusterNetwork
from .platforms import implementation


@dataclass
class SearchTierArgs:
    cluster: ClusterConfig
    network: ClusterNetwork
    # The password of an existing cluster (search.uris), a Pulumi secret.
    password: Optional[pulumi.Input[str]] = None


class SearchTierOutputs(NamedTuple):
    uris: pulumi.Output[list[str]]
    username: pulumi.Output[str]
    # Secret. On AWS the Secrets Manager reference that ECS resolves, as MySQLPair's password.
    password: pulumi.Output[str]
    # Whether nodes may ask the cluster for its other servers (Hibernate Search's discovery); a managed
    # service behind one endpoint answers with addresses the nodes cannot reach.
    discovery: bool


class SearchTier(pulumi.ComponentResource):
    uris: pulumi.Output[list[str]]
    username: pulumi.Output[str]
    password: pulumi.Output[str]
    discovery: bool

    def __init__(self, name: str, args: SearchTierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:SearchTier", name, None, opts)
        outputs = implementation(args.cluster.platform, "search").build(self, name, args)
        self.uris, self.username, self.password, self.discovery = outputs
        self.register_outputs(outputs._asdict())
