"""The O3 interface on AWS: its built files in a private S3 bucket behind CloudFront, whose second origin is the
ALB, so that one host name serves <context path>/spa/ from S3 and the rest from the nodes, as locally.

The files are built on the deploying machine, as the tasks' images are (app_image.py), from images/o3-frontend
with frontend.*'s build arguments, once per digest of those (the local platform's digest): the command
provider's run, at preview as at update, calls frontend_build.py, which returns at once for a digest it has.
Each file is then an S3 object of the stack, written with the provider's own credentials (no AWS CLI, as the
scale-out needs none): a preview lists the files a change adds, rewrites or removes, only those are written,
and a file the new build lacks is deleted at the end of the update, after the new index.html is in place. The
files at the build's top level (index.html, importmap.json, routes.registry.json: what a browser fetches first,
and which names every other file) are written only after all the others.

Each file carries the Cache-Control the local static servers send (components/templates/static-server.conf): a
year, immutable, in a module's versioned folder (<module>-<exact version>/, which npm never changes) or with a
content hash in its name; revalidation at each use (no-cache) for the page and every JSON file (the import map,
the routes, configuration); an hour for the rest (icons, fonts). CloudFront follows each file's header, so a
deployment needs no invalidation, and compresses per browser (gzip, Brotli): the build's precompressed .gz
copies are not uploaded, as an object stored compressed would reach a client that did not ask for it. Every
answer gets the security headers the local balancers add (HSTS, nosniff, same-origin framing, referrer
policy), and the application's files the static servers' Content-Security-Policy. A path without an extension under <context>/spa/ is a client-side route (login, home): a viewer
function answers it with index.html, leaving a missing file a 404 and the backend's answers alone; `/`
redirects to <context>/spa/home.

CloudFront reaches the ALB by the ALB's DNS name and forwards everything a browser sent, its Host included, so
that Tomcat's redirects and cookies name the site; over HTTPS it then checks the ALB's certificate against that
name, which is why aws.domain_names must be covered by aws.certificate_arn as by aws.cdn_certificate_arn. With
neither (staging), CloudFront serves its own *.cloudfront.net name and reaches the ALB over plain HTTP. Nothing
from the ALB is cached. The ALB takes CloudFront's requests only (network.py), so aws.allowed_client_cidrs is
checked by the viewer functions. The WAF (aws.waf) stays on the ALB.

The bucket: versioned, so that an earlier build's files can be restored for NONCURRENT_DAYS; SSE-S3, as its
files are the application every browser downloads (a KMS key would protect nothing more, and cost a key policy
naming the distribution); no public access, readable only by this distribution, through its OAC."""
import ipaddress
import json
import re
import sys
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_command as command

from ..checksums import PROJECT_ROOT, build_digest
from ..config import ClusterConfig
from ..config.frontend import FRONTEND_CONTEXT
from ..render import render
from ..static_content_tier import StaticContentTierArgs, StaticContentTierOutputs
from .network import ANYWHERE

BUILD_ROOT = PROJECT_ROOT / ".build" / "o3-frontend"
BUILD_STEP = Path(__file__).with_name("frontend_build.py")
REPOSITORY = "openmrs-cluster/o3-frontend"  # the local platform's, so a build made for one serves the other
ONE_YEAR = 31536000
IMMUTABLE = f"public, max-age={ONE_YEAR}, immutable"
REVALIDATED = "no-cache"
HOURLY = "public, max-age=3600"
# A module's folder in the build: its npm name and exact version.
VERSIONED_FOLDER = re.compile(r"[^/]+-\d+\.\d+\.\d+[^/]*")
# A file named by its content: 4d6aed8417fde159.js, openmrs.596fb10593f5a80d.css, their source maps.
HASHED_NAME = re.compile(r"(.*\.)?([0-9a-f]{16}|[0-9a-f]{32})\.[a-z0-9]+(\.map)?")
# The page, the import map, the routes and the configuration files.
REVALIDATED_SUFFIXES = (".html", ".json")
PRECOMPRESSED = (".gz", ".br")
CONTENT_TYPES = {
    ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
    ".json": "application/json", ".map": "application/json", ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".ico": "image/x-icon", ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf",
    ".otf": "font/otf", ".eot": "application/vnd.ms-fontobject", ".txt": "text/plain", ".xml": "application/xml",
    ".wasm": "application/wasm",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Days an earlier build's files (noncurrent versions) can be restored.
NONCURRENT_DAYS = 30
# AWS's managed policies, whose ids are the same in every account.
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER = "216adef6-5c7f-47e4-b989-5492eafa07d3"  # every header (Host too), cookie and query string
ALL_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
READ_METHODS = ["GET", "HEAD"]
# The longest CloudFront waits for the ALB's response without a quota increase: a page slower than this (a long
# report) fails with a 504 through CloudFront, where the ALB itself waits aws.idle_timeout_seconds.
ORIGIN_READ_TIMEOUT = 60
VIEWER_TLS = "TLSv1.2_2021"
# Browsers come back over HTTPS only for two years, as the local balancers tell them.
HSTS_SECONDS = 63072000
SPA_ORIGIN, SITE_ORIGIN = "spa-files", "alb"


def cache_control(path: str) -> str:
    """`path`, relative to the build, as the local static servers' map: versioned or hashed files never change;
    what names them is revalidated; the rest may be an hour old."""
    folder, _, file_name = path.rpartition("/")
    if VERSIONED_FOLDER.fullmatch(folder.split("/", 1)[0]) or HASHED_NAME.fullmatch(file_name):
        return IMMUTABLE
    return REVALIDATED if file_name.endswith(REVALIDATED_SUFFIXES) else HOURLY


def content_type(path: str) -> str:
    """From the project's table, not the deploying machine's, so that every machine writes the same objects."""
    return CONTENT_TYPES.get(Path(path).suffix.lower(), DEFAULT_CONTENT_TYPE)


def built_files(component: pulumi.ComponentResource, digest: str,
                build_args: dict[str, str]) -> dict[str, pulumi.Asset]:
    """The build's files by their path in it, built first if this machine has not built `digest` yet."""
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    result = command.local.run(
        command=str(BUILD_STEP), interpreter=[sys.executable], dir=str(BUILD_ROOT),
        environment={"FRONTEND_DIGEST": digest, "FRONTEND_TAG": f"{REPOSITORY}:{digest}",
                     "FRONTEND_CONTEXT": str(PROJECT_ROOT / FRONTEND_CONTEXT),
                     "FRONTEND_BUILD_ARGS": json.dumps(build_args)},
        asset_paths=[f"{digest}/**"], opts=pulumi.InvokeOptions(parent=component))
    files = {path.removeprefix(f"{digest}/"): asset for path, asset in result.assets.items()}
    return {path: asset for path, asset in files.items()
            if not (path.endswith(PRECOMPRESSED) and path[:-3] in files)}


def _bucket(component: pulumi.ComponentResource, name: str) -> aws.s3.Bucket:
    """Private, versioned, encrypted; its policy comes with the distribution it names."""
    child = pulumi.ResourceOptions(parent=component)
    logical = f"{name}-files"
    # Everything in it is built from the stack again.
    bucket = aws.s3.Bucket(logical, force_destroy=True, opts=child)
    aws.s3.BucketPublicAccessBlock(logical, bucket=bucket.id, block_public_acls=True, block_public_policy=True,
                                   ignore_public_acls=True, restrict_public_buckets=True, opts=child)
    aws.s3.BucketOwnershipControls(logical, bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"},
                                   opts=child)
    aws.s3.BucketServerSideEncryptionConfiguration(
        logical, bucket=bucket.id, rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
        opts=child)
    aws.s3.BucketVersioning(logical, bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child)
    aws.s3.BucketLifecycleConfiguration(
        logical, bucket=bucket.id,
        rules=[{
            "id": "expire-earlier-builds", "status": "Enabled", "filter": {"prefix": ""},
            "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_DAYS},
            # A removed file's delete marker, once its earlier versions are gone.
            "expiration": {"expired_object_delete_marker": True},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
        }],
        opts=child)
    return bucket


def _bucket_policy(component: pulumi.ComponentResource, name: str, bucket: aws.s3.Bucket,
                   distribution: aws.cloudfront.Distribution) -> None:
    """Reads by this distribution only; listing too, so that a missing file is a 404, not a 403."""
    reader = {"Service": "cloudfront.amazonaws.com"}
    this_distribution = {"StringEquals": {"AWS:SourceArn": distribution.arn}}
    aws.s3.BucketPolicy(
        f"{name}-files", bucket=bucket.id,
        policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "DistributionReads", "Effect": "Allow", "Principal": reader, "Action": "s3:GetObject",
             "Resource": pulumi.Output.concat(bucket.arn, "/*"), "Condition": this_distribution},
            {"Sid": "DistributionLists", "Effect": "Allow", "Principal": reader, "Action": "s3:ListBucket",
             "Resource": bucket.arn, "Condition": this_distribution},
            {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ]}),
        opts=pulumi.ResourceOptions(parent=component))


def _upload(component: pulumi.ComponentResource, name: str, bucket: aws.s3.Bucket, files: dict[str, pulumi.Asset],
            prefix: str) -> None:
    """One object per file; the top level's revalidated files once every other file is written."""
    def put(path: str, depends_on: list[pulumi.Resource]) -> aws.s3.BucketObjectv2:
        return aws.s3.BucketObjectv2(
            f"{name}-spa/{path}", bucket=bucket.id, key=f"{prefix}{path}", source=files[path],
            content_type=content_type(path), cache_control=cache_control(path),
            opts=pulumi.ResourceOptions(parent=component, depends_on=depends_on))

    entry = {path for path in files if "/" not in path and cache_control(path) == REVALIDATED}
    written = [put(path, []) for path in sorted(set(files) - entry)]
    for path in sorted(entry):
        put(path, written)


def _viewer_function(component: pulumi.ComponentResource, name: str, behaviour: str, spa: str,
                     cluster: ClusterConfig) -> aws.cloudfront.Function:
    cidrs = cluster.aws.allowed_client_cidrs
    clients = None if ANYWHERE in cidrs else json.dumps(
        [[int(network.network_address), int(network.netmask)] for network in map(ipaddress.IPv4Network, cidrs)])
    return aws.cloudfront.Function(
        f"{name}-{behaviour}", runtime="cloudfront-js-2.0", publish=True,
        comment=f"openmrs-cluster {pulumi.get_stack()}: the {behaviour} behaviour's viewer requests",
        code=render("cloudfront-viewer.js", behaviour=behaviour, spa=spa, clients=clients),
        opts=pulumi.ResourceOptions(parent=component))


def _spa_cache_policy(component: pulumi.ComponentResource, name: str) -> aws.cloudfront.CachePolicy:
    """Each file's own Cache-Control decides, up to a year; a file without one is not kept."""
    return aws.cloudfront.CachePolicy(
        f"{name}-spa", comment="O3 files: each file's Cache-Control, up to a year", min_ttl=0, default_ttl=0,
        max_ttl=ONE_YEAR,
        parameters_in_cache_key_and_forwarded_to_origin={
            "cookies_config": {"cookie_behavior": "none"}, "headers_config": {"header_behavior": "none"},
            "query_strings_config": {"query_string_behavior": "none"},
            "enable_accept_encoding_gzip": True, "enable_accept_encoding_brotli": True},
        opts=pulumi.ResourceOptions(parent=component))


def _security_headers(component: pulumi.ComponentResource, name: str, kind: str,
                      content_security_policy: str | None = None) -> aws.cloudfront.ResponseHeadersPolicy:
    """The local balancers' headers, over the origin's own; on the application's files, the local static
    servers' Content-Security-Policy too."""
    headers = {
        "strict_transport_security": {"access_control_max_age_sec": HSTS_SECONDS, "override": True},
        "content_type_options": {"override": True},
        "frame_options": {"frame_option": "SAMEORIGIN", "override": True},
        "referrer_policy": {"referrer_policy": "strict-origin-when-cross-origin", "override": True},
    }
    if content_security_policy:
        headers["content_security_policy"] = {"content_security_policy": content_security_policy, "override": True}
    return aws.cloudfront.ResponseHeadersPolicy(
        f"{name}-{kind}-security", comment=f"openmrs-cluster: the {kind}'s security headers",
        security_headers_config=headers, opts=pulumi.ResourceOptions(parent=component))


def _viewer_certificate(cluster: ClusterConfig) -> aws.cloudfront.DistributionViewerCertificateArgs:
    settings = cluster.aws
    if settings.cdn_certificate_arn:
        return aws.cloudfront.DistributionViewerCertificateArgs(
            acm_certificate_arn=settings.cdn_certificate_arn, ssl_support_method="sni-only",
            minimum_protocol_version=VIEWER_TLS)
    # CloudFront's own name and certificate, outside production only: CloudFront then allows TLS 1.0 whatever
    # the setting says, and requires it to say so.
    return aws.cloudfront.DistributionViewerCertificateArgs(cloudfront_default_certificate=True,
                                                            minimum_protocol_version="TLSv1")


def build(component: pulumi.ComponentResource, name: str, args: StaticContentTierArgs) -> StaticContentTierOutputs:
    cluster = args.cluster
    if not cluster.frontend.enabled:
        return StaticContentTierOutputs(url=args.balancer.url, site_url=args.balancer.url, build="")
    settings = cluster.aws
    child = pulumi.ResourceOptions(parent=component)
    build_args = cluster.frontend.build_args()
    digest = build_digest(PROJECT_ROOT / FRONTEND_CONTEXT, build_args)
    spa = f"{cluster.app.context_path}/spa/"
    bucket = _bucket(component, name)
    _upload(component, name, bucket, built_files(component, digest, build_args), spa.lstrip("/"))
    access = aws.cloudfront.OriginAccessControl(
        f"{name}-files", origin_access_control_origin_type="s3", signing_behavior="always", signing_protocol="sigv4",
        description=f"openmrs-cluster {pulumi.get_stack()}: CloudFront reads the O3 files", opts=child)
    alb = args.balancer.membership.load_balancer
    site_headers = _security_headers(component, name, "site")
    spa_headers = _security_headers(component, name, "spa", cluster.frontend.content_security_policy())
    clients_everywhere = ANYWHERE in settings.allowed_client_cidrs
    distribution = aws.cloudfront.Distribution(
        f"{name}-cdn",
        enabled=True,
        comment=f"openmrs-cluster {pulumi.get_stack()}: O3 from S3, the rest from the ALB",
        aliases=settings.domain_names,
        viewer_certificate=_viewer_certificate(cluster),
        http_version="http2and3",
        # A restricted list of clients is of IPv4 networks, so viewers come over IPv4 to be checked.
        is_ipv6_enabled=clients_everywhere,
        restrictions=aws.cloudfront.DistributionRestrictionsArgs(
            geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(restriction_type="none")),
        origins=[
            aws.cloudfront.DistributionOriginArgs(origin_id=SPA_ORIGIN, domain_name=bucket.bucket_regional_domain_name,
                                                  origin_access_control_id=access.id),
            aws.cloudfront.DistributionOriginArgs(
                origin_id=SITE_ORIGIN, domain_name=alb.dns_name,
                custom_origin_config=aws.cloudfront.DistributionOriginCustomOriginConfigArgs(
                    http_port=80, https_port=443,
                    origin_protocol_policy="https-only" if settings.certificate_arn else "http-only",
                    origin_ssl_protocols=["TLSv1.2"], origin_read_timeout=ORIGIN_READ_TIMEOUT)),
        ],
        ordered_cache_behaviors=[aws.cloudfront.DistributionOrderedCacheBehaviorArgs(
            path_pattern=f"{spa}*", target_origin_id=SPA_ORIGIN, viewer_protocol_policy="redirect-to-https",
            allowed_methods=READ_METHODS, cached_methods=READ_METHODS, compress=True,
            cache_policy_id=_spa_cache_policy(component, name).id, response_headers_policy_id=spa_headers.id,
            function_associations=[aws.cloudfront.DistributionOrderedCacheBehaviorFunctionAssociationArgs(
                event_type="viewer-request", function_arn=_viewer_function(component, name, "spa", spa, cluster).arn)],
        )],
        default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
            target_origin_id=SITE_ORIGIN, viewer_protocol_policy="redirect-to-https",
            allowed_methods=ALL_METHODS, cached_methods=READ_METHODS,
            cache_policy_id=CACHING_DISABLED, origin_request_policy_id=ALL_VIEWER,
            response_headers_policy_id=site_headers.id,
            function_associations=[aws.cloudfront.DistributionDefaultCacheBehaviorFunctionAssociationArgs(
                event_type="viewer-request", function_arn=_viewer_function(component, name, "site", spa, cluster).arn)],
        ),
        opts=child,
    )
    _bucket_policy(component, name, bucket, distribution)
    host = settings.domain_names[0] if settings.domain_names else distribution.domain_name
    return StaticContentTierOutputs(url=pulumi.Output.format("https://{0}{1}login", host, spa),
                                    site_url=pulumi.Output.format("https://{0}{1}/", host, cluster.app.context_path),
                                    build=digest)
