"""The AWS search tier: an Amazon OpenSearch Service domain in the private subnets, a data node in each zone
(up to three), reached over HTTPS only from the app nodes; or, with search.uris, an existing cluster.

OpenMRS cannot sign requests with IAM (the WAR lacks hibernate-search-backend-elasticsearch-aws), so the
nodes log in with HTTP basic auth as the domain's internal master user (fine-grained access control). The
credentials live in Secrets Manager, from which ECS hands the password to the nodes."""
import hashlib
import json
import re

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from ..search_tier import SearchTierArgs, SearchTierOutputs
from .database import PASSWORD_KEY

# The last OpenSearch minor before 3.0: Hibernate Search 6.2 (core 2.8) supports OpenSearch 1.x and 2.x.
ENGINE_VERSION = "OpenSearch_2.19"
TLS_POLICY = "Policy-Min-TLS-1-2-PFS-2023-10"
# Zone awareness spans two or three zones.
MAX_ZONES = 3
# Domain names: 3 to 28 lowercase letters, digits and hyphens, starting with a letter.
DOMAIN_NAME_LENGTH = 28
# Special characters that the master user password needs, and that a Java properties file (the image writes
# OMRS_EXTRA_* into openmrs-runtime.properties) takes as they are.
PASSWORD_SPECIALS = "-_."


def _stored_credentials(component, name: str, username: pulumi.Input[str],
                        password: pulumi.Input[str]) -> pulumi.Output[str]:
    """A Secrets Manager secret {username, password}; returns the reference ECS resolves to the password,
    so the password reaches the nodes without leaving AWS, as the database's does."""
    child = pulumi.ResourceOptions(parent=component)
    secret = aws.secretsmanager.Secret(f"{name}-credentials", recovery_window_in_days=7,
                                       description="OpenMRS search: the user the nodes log in as", opts=child)
    aws.secretsmanager.SecretVersion(
        f"{name}-credentials", secret_id=secret.id,
        secret_string=pulumi.Output.secret(pulumi.Output.json_dumps({"username": username, "password": password})),
        opts=child)
    return pulumi.Output.secret(secret.arn.apply(lambda arn: arn + PASSWORD_KEY))


def _existing_cluster(component, name: str, args: SearchTierArgs) -> SearchTierOutputs:
    """search.uris as given; the password, if the cluster takes one, through Secrets Manager ("" if not)."""
    search = args.cluster.search
    password = pulumi.Output.secret("")
    if args.password is not None:
        password = _stored_credentials(component, name, search.username, pulumi.Output.secret(args.password))
    return SearchTierOutputs(uris=pulumi.Output.from_input(list(search.uris)),
                             username=pulumi.Output.from_input(search.username), password=password, discovery=False)


def _domain_name(name: str) -> str:
    """Unique in the account and region, so the stack's name is in it; shortened with a hash to fit."""
    wanted = re.sub(r"[^a-z0-9-]+", "-", f"{pulumi.get_stack()}-{name}".lower()).strip("-")
    if not wanted[:1].isalpha():
        wanted = f"s-{wanted}"
    if len(wanted) <= DOMAIN_NAME_LENGTH:
        return wanted
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:6]
    return f"{wanted[:DOMAIN_NAME_LENGTH - 7].rstrip('-')}-{digest}"


def _master_password(name: str, component) -> pulumi.Output[str]:
    """Generated with what the service demands of a master password: upper and lower case letters, a digit
    and a special character (components/passwords.py makes letters and digits only)."""
    generated = random.RandomPassword(
        name, length=32, special=True, override_special=PASSWORD_SPECIALS,
        min_upper=1, min_lower=1, min_numeric=1, min_special=1, opts=pulumi.ResourceOptions(parent=component))
    return pulumi.Output.secret(generated.result)


def _access_policy(domain_arn: str) -> str:
    """Lets requests reach the domain without an IAM signature. A policy naming IAM principals would demand
    signed requests, which OpenMRS cannot send; the VPC, the security group and fine-grained access control
    (the master user's password) decide who gets in."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "es:ESHttp*", "Resource": f"{domain_arn}/*"}]})


def _domain(component, name: str, args: SearchTierArgs) -> SearchTierOutputs:
    settings, username = args.cluster.aws, args.cluster.search.username
    network = args.network.platform_network
    child = pulumi.ResourceOptions(parent=component)
    subnets = network.private_subnet_ids[:MAX_ZONES]
    password = _master_password(f"{name}-master-password", component)
    domain = aws.opensearch.Domain(
        f"{name}-domain",
        domain_name=_domain_name(name),
        engine_version=ENGINE_VERSION,
        # A data node per zone; each index's replica lands in another zone than its primary.
        cluster_config=aws.opensearch.DomainClusterConfigArgs(
            instance_type=settings.search_instance_type,
            instance_count=len(subnets),
            zone_awareness_enabled=True,
            zone_awareness_config=aws.opensearch.DomainClusterConfigZoneAwarenessConfigArgs(
                availability_zone_count=len(subnets)),
        ),
        ebs_options=aws.opensearch.DomainEbsOptionsArgs(
            ebs_enabled=True, volume_type="gp3", volume_size=settings.search_volume_gb),
        encrypt_at_rest=aws.opensearch.DomainEncryptAtRestArgs(enabled=True),
        node_to_node_encryption=aws.opensearch.DomainNodeToNodeEncryptionArgs(enabled=True),
        domain_endpoint_options=aws.opensearch.DomainDomainEndpointOptionsArgs(
            enforce_https=True, tls_security_policy=TLS_POLICY),
        advanced_security_options=aws.opensearch.DomainAdvancedSecurityOptionsArgs(
            enabled=True,
            anonymous_auth_enabled=False,
            internal_user_database_enabled=True,
            master_user_options=aws.opensearch.DomainAdvancedSecurityOptionsMasterUserOptionsArgs(
                master_user_name=username, master_user_password=password),
        ),
        # Inside the VPC: the domain has no public endpoint.
        vpc_options=aws.opensearch.DomainVpcOptionsArgs(
            subnet_ids=subnets, security_group_ids=[network.search_group.id]),
        software_update_options=aws.opensearch.DomainSoftwareUpdateOptionsArgs(auto_software_update_enabled=True),
        opts=child,
    )
    aws.opensearch.DomainPolicy(f"{name}-access", domain_name=domain.domain_name,
                                access_policies=domain.arn.apply(_access_policy), opts=child)
    # The service answers on one endpoint and hides its nodes' addresses: no discovery.
    return SearchTierOutputs(
        uris=domain.endpoint.apply(lambda endpoint: [f"https://{endpoint}:443"]),
        username=pulumi.Output.from_input(username),
        password=_stored_credentials(component, name, username, password),
        discovery=False,
    )


def build(component: pulumi.ComponentResource, name: str, args: SearchTierArgs) -> SearchTierOutputs:
    if args.cluster.search.uris:
        return _existing_cluster(component, name, args)
    return _domain(component, name, args)
