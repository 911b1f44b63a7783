"""The cluster's reusable components: one type token and the same outputs on every platform."""
from .backups import Backups, BackupsArgs
from .load_balancer_tier import LoadBalancerTier, LoadBalancerTierArgs
from .monitoring import Monitoring, MonitoringArgs
from .mysql_pair import MySQLPair, MySQLPairArgs
from .network import ClusterNetwork, ClusterNetworkArgs
from .search_tier import SearchTier, SearchTierArgs
from .shared_storage import SharedStorage, SharedStorageArgs
from .static_content_tier import StaticContentTier, StaticContentTierArgs
from .tomcat_pool import TomcatPool, TomcatPoolArgs

__all__ = [
    "Backups", "BackupsArgs", "ClusterNetwork", "ClusterNetworkArgs", "LoadBalancerTier", "LoadBalancerTierArgs", "Monitoring",
    "MonitoringArgs", "MySQLPair",
    "MySQLPairArgs", "SearchTier", "SearchTierArgs", "SharedStorage", "SharedStorageArgs", "StaticContentTier",
    "StaticContentTierArgs", "TomcatPool",
    "TomcatPoolArgs",
]
