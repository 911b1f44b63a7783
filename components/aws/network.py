"""The AWS network: a VPC with a public and a private subnet per zone (or an existing VPC), and one
security group per tier whose rules allow exactly clients (aws.allowed_client_cidrs) -> balancer -> app ->
database / files / search, app <-> app for the nodes' shared caches, and scheduler keeper -> app. While
CloudFront serves the O3 interface (frontend.enabled), it is the balancer's only client, by AWS's list of its
addresses, and checks aws.allowed_client_cidrs itself (static_content.py). A VPC the stack makes records its
flow logs (every accepted and rejected connection) in CloudWatch Logs."""
import ipaddress
import json
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws

from ..config import ClusterConfig

ANYWHERE = "0.0.0.0/0"
HTTPS = 443
# AWS's prefix list of the addresses CloudFront reaches origins from.
CLOUDFRONT_ORIGIN_FACING = "com.amazonaws.global.cloudfront.origin-facing"
ALL_PORTS = (0, 65535)


@dataclass
class AwsNetwork:
    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    balancer_group: aws.ec2.SecurityGroup
    app_group: aws.ec2.SecurityGroup
    database_group: aws.ec2.SecurityGroup
    storage_group: aws.ec2.SecurityGroup
    keeper_group: aws.ec2.SecurityGroup
    # The OpenSearch domain's group; None when the nodes use an existing cluster (search.uris).
    search_group: Optional[aws.ec2.SecurityGroup]

    @property
    def private_network_id(self) -> pulumi.Output[str]:
        return self.vpc_id


def _new_vpc(component, name: str, cluster: ClusterConfig):
    settings = cluster.aws
    child = pulumi.ResourceOptions(parent=component)
    vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=settings.vpc_cidr, enable_dns_hostnames=True,
                      enable_dns_support=True, tags={"Name": f"{name}-vpc"}, opts=child)
    gateway = aws.ec2.InternetGateway(f"{name}-internet", vpc_id=vpc.id, opts=child)
    public_routes = aws.ec2.RouteTable(
        f"{name}-public-routes", vpc_id=vpc.id,
        routes=[aws.ec2.RouteTableRouteArgs(cidr_block=ANYWHERE, gateway_id=gateway.id)], opts=child,
    )
    # /24 subnets: public ones from the start of the VPC range, private ones from its middle.
    blocks = list(ipaddress.IPv4Network(settings.vpc_cidr).subnets(new_prefix=24))
    zones = settings.availability_zones
    half = len(blocks) // 2
    public, private, nat_gateways = [], [], []
    for index, zone in enumerate(zones):
        subnet = aws.ec2.Subnet(f"{name}-public-{index + 1}", vpc_id=vpc.id, availability_zone=zone,
                                cidr_block=str(blocks[index]), map_public_ip_on_launch=False,
                                tags={"Name": f"{name}-public-{zone}"}, opts=child)
        aws.ec2.RouteTableAssociation(f"{name}-public-{index + 1}", subnet_id=subnet.id,
                                      route_table_id=public_routes.id, opts=child)
        public.append(subnet)
        # Production: a NAT gateway per zone, so losing a zone keeps the others' way out. Staging: one.
        if settings.production or index == 0:
            address = aws.ec2.Eip(f"{name}-nat-{index + 1}", domain="vpc", opts=child)
            nat_gateways.append(aws.ec2.NatGateway(f"{name}-nat-{index + 1}", allocation_id=address.id,
                                                   subnet_id=subnet.id, opts=child))
    for index, zone in enumerate(zones):
        subnet = aws.ec2.Subnet(f"{name}-private-{index + 1}", vpc_id=vpc.id, availability_zone=zone,
                                cidr_block=str(blocks[half + index]), tags={"Name": f"{name}-private-{zone}"},
                                opts=child)
        nat = nat_gateways[index] if settings.production else nat_gateways[0]
        routes = aws.ec2.RouteTable(
            f"{name}-private-routes-{index + 1}", vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block=ANYWHERE, nat_gateway_id=nat.id)], opts=child,
        )
        aws.ec2.RouteTableAssociation(f"{name}-private-{index + 1}", subnet_id=subnet.id,
                                      route_table_id=routes.id, opts=child)
        private.append(subnet)
    _flow_logs(component, name, vpc.id, settings.log_retention_days)
    return vpc.id, [s.id for s in public], [s.id for s in private]


def _flow_logs(component, name: str, vpc_id: pulumi.Output[str], retention_days: int) -> None:
    """Every connection the VPC accepts or rejects, for an investigation after the fact, kept as long as the
    other logs; delivered by a role that may write this log group only. An existing VPC's owner keeps its own."""
    child = pulumi.ResourceOptions(parent=component)
    logical = f"{name}-flow-logs"
    log_group = aws.cloudwatch.LogGroup(logical, retention_in_days=retention_days, opts=child)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "vpc-flow-logs.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = aws.iam.Role(logical, assume_role_policy=json.dumps(trust), opts=child)
    aws.iam.RolePolicy(logical, role=role.id, policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups", "logs:DescribeLogStreams"],
        "Resource": [log_group.arn, pulumi.Output.concat(log_group.arn, ":*")],
    }]}), opts=child)
    aws.ec2.FlowLog(logical, vpc_id=vpc_id, traffic_type="ALL", log_destination_type="cloud-watch-logs",
                    log_destination=log_group.arn, iam_role_arn=role.arn, opts=child)


def _allow(component, name: str, group, ports: int | tuple[int, int], *, inbound: bool, peer=None,
           cidr: str | None = None, prefix_list: pulumi.Input[str] | None = None):
    """One rule of the tier-to-tier table: `group` may receive (inbound) or send (outbound) on a port, or a
    range (first, last)."""
    first, last = ports if isinstance(ports, tuple) else (ports, ports)
    rule = aws.vpc.SecurityGroupIngressRule if inbound else aws.vpc.SecurityGroupEgressRule
    rule(name, security_group_id=group.id, ip_protocol="tcp", from_port=first, to_port=last,
         referenced_security_group_id=peer.id if peer is not None else None, cidr_ipv4=cidr,
         prefix_list_id=prefix_list, opts=pulumi.ResourceOptions(parent=component))


def _existing_search_ports(cluster: ClusterConfig) -> list[int]:
    """The ports of a given search cluster (search.uris) that the nodes' way out to AWS does not cover."""
    ports = {urlsplit(uri).port for uri in cluster.search.uris}
    return sorted(ports - {HTTPS})


def build(component: pulumi.ComponentResource, name: str, cluster: ClusterConfig) -> AwsNetwork:
    existing = cluster.aws.existing_vpc
    if existing is None:
        vpc_id, public, private = _new_vpc(component, name, cluster)
    else:
        vpc_id = pulumi.Output.from_input(existing.vpc_id)
        public = [pulumi.Output.from_input(s) for s in existing.public_subnet_ids]
        private = [pulumi.Output.from_input(s) for s in existing.private_subnet_ids]

    def group(tier: str, description: str) -> aws.ec2.SecurityGroup:
        # No inline rules: the provider then removes AWS's default allow-all egress.
        return aws.ec2.SecurityGroup(f"{name}-{tier}", vpc_id=vpc_id, description=description,
                                     tags={"Name": f"{name}-{tier}"}, opts=pulumi.ResourceOptions(parent=component))

    # "the internet" also when aws.allowed_client_cidrs narrows it: a new description would replace the group.
    balancer = group("balancer", "OpenMRS load balancer: HTTP(S) from the internet")
    # The keeper reaches the nodes too; a new description would replace the group under running tasks.
    app = group("app", "OpenMRS nodes: the app port from the balancer only")
    database = group("database", "OpenMRS database: MySQL from the nodes only")
    storage = group("files", "OpenMRS shared files: NFS from the nodes only")
    keeper = group("keeper", "OpenMRS scheduler keeper: nothing in; the nodes' app port out")
    search = None if cluster.search.uris else group("search", "OpenMRS search: HTTPS from the nodes only")
    app_port = cluster.app.port
    if cluster.frontend.enabled:
        # On the one port CloudFront uses: HTTPS with the ALB's certificate, plain HTTP (staging) without. The
        # list counts as about 55 rules of the group's 60.
        port = HTTPS if cluster.aws.certificate_arn else 80
        cloudfront = aws.ec2.get_managed_prefix_list_output(name=CLOUDFRONT_ORIGIN_FACING)
        _allow(component, f"{name}-cloudfront-to-balancer-{port}", balancer, port, inbound=True,
               prefix_list=cloudfront.id)
    else:
        for index, cidr in enumerate(cluster.aws.allowed_client_cidrs):
            for port in (80, HTTPS):
                _allow(component, f"{name}-clients-{index + 1}-to-balancer-{port}", balancer, port, inbound=True,
                       cidr=cidr)
    _allow(component, f"{name}-balancer-to-app", balancer, app_port, inbound=False, peer=app)
    _allow(component, f"{name}-app-from-balancer", app, app_port, inbound=True, peer=balancer)
    # The scheduler keeper asks each node directly, over the REST module.
    _allow(component, f"{name}-keeper-to-app", keeper, app_port, inbound=False, peer=app)
    _allow(component, f"{name}-app-from-keeper", app, app_port, inbound=True, peer=keeper)
    _allow(component, f"{name}-app-to-database", app, 3306, inbound=False, peer=database)
    _allow(component, f"{name}-database-from-app", database, 3306, inbound=True, peer=app)
    _allow(component, f"{name}-app-to-files", app, 2049, inbound=False, peer=storage)
    _allow(component, f"{name}-files-from-app", storage, 2049, inbound=True, peer=app)
    # The shared caches: JGroups on 7800 and 7801, and FD_SOCK on a port it picks at random; nodes only.
    _allow(component, f"{name}-app-to-app", app, ALL_PORTS, inbound=False, peer=app)
    _allow(component, f"{name}-app-from-app", app, ALL_PORTS, inbound=True, peer=app)
    if search is not None:
        _allow(component, f"{name}-app-to-search", app, HTTPS, inbound=False, peer=search)
        _allow(component, f"{name}-search-from-app", search, HTTPS, inbound=True, peer=app)
    for port in _existing_search_ports(cluster):
        _allow(component, f"{name}-app-to-search-{port}", app, port, inbound=False, cidr=ANYWHERE)
    # Image pulls, Secrets Manager and CloudWatch Logs, through the NAT gateway.
    _allow(component, f"{name}-app-to-aws-apis", app, HTTPS, inbound=False, cidr=ANYWHERE)
    _allow(component, f"{name}-keeper-to-aws-apis", keeper, HTTPS, inbound=False, cidr=ANYWHERE)
    return AwsNetwork(vpc_id, public, private, balancer, app, database, storage, keeper, search)
