"""openmrs-cluster: reads the stack's configuration and wires the cluster's components together."""
import pulumi

from components import (
    Backups, BackupsArgs, ClusterNetwork, ClusterNetworkArgs, LoadBalancerTier, LoadBalancerTierArgs, Monitoring,
    MonitoringArgs, MySQLPair, MySQLPairArgs, SearchTier, SearchTierArgs, SharedStorage, SharedStorageArgs, StaticContentTier,
    StaticContentTierArgs, TomcatPool, TomcatPoolArgs,
)
from components.config import read_stack_config

stack = read_stack_config()
cluster = stack.cluster

network = ClusterNetwork("net", ClusterNetworkArgs(cluster=cluster))
database = MySQLPair("db", MySQLPairArgs(cluster=cluster, network=network, passwords=stack.given_secrets))
storage = SharedStorage("files", SharedStorageArgs(cluster=cluster, network=network))
search = SearchTier("search", SearchTierArgs(cluster=cluster, network=network,
                                             password=stack.given_secrets.get("search_password")))
balancer = LoadBalancerTier("lb", LoadBalancerTierArgs(cluster=cluster, network=network,
                                                      site_certificate=stack.site_certificate))
frontend = StaticContentTier("o3", StaticContentTierArgs(cluster=cluster, network=network, balancer=balancer))
pool = TomcatPool(
    "app",
    TomcatPoolArgs(
        cluster=cluster, network=network, database=database, storage=storage, balancer=balancer, search=search,
        admin_password=stack.given_secrets.get("admin_password"),
    ),
)

backups = None
if cluster.backup.enabled:
    backups = Backups("backups", BackupsArgs(cluster=cluster, network=network, database=database, storage=storage,
                                             s3_secret_key=stack.given_secrets.get("backup_s3_secret_key")))
    pulumi.export("backups", backups.location)

if cluster.monitoring.enabled:
    monitoring = Monitoring("monitoring", MonitoringArgs(
        cluster=cluster, network=network, balancer=balancer, pool=pool, database=database, storage=storage,
        backups=backups, smtp_password=stack.given_secrets.get("monitoring_smtp_password")))
    pulumi.export("dashboard_url", monitoring.dashboard_url)
    pulumi.export("alerts", monitoring.alerts)
    if monitoring.dashboard_password is not None:
        pulumi.export("dashboard_password", monitoring.dashboard_password)

pulumi.export("url", frontend.site_url)
pulumi.export("urls", balancer.urls)
pulumi.export("o3_url", frontend.url)
if balancer.authority_certificate is not None:
    pulumi.export("certificate_authority", balancer.authority_certificate)
if cluster.balancer.engine == "external":
    pulumi.export("external_balancer", balancer.external)
    pulumi.export("as3_declaration", balancer.as3_declaration)
pulumi.export("members", [member._asdict() for member in pool.members])
pulumi.export("database_writer_endpoint", database.writer_endpoint)
pulumi.export("database_reader_endpoint", database.reader_endpoint)
pulumi.export("database_password", database.password)
pulumi.export("admin_password", pool.admin_password)
pulumi.export("search_uris", search.uris)
if storage.drbd_resource is not None:
    pulumi.export("drbd_resource", storage.drbd_resource)
