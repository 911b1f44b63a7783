"""The O3 interface on AWS (components/aws/static_content.py), on the program's mocked graph: a private bucket
that only this distribution reads through its OAC, CloudFront serving <context>/spa/ from it and the rest from
the ALB, uncached, and the upload keyed by the build's digest, each file with its cache headers. The viewer
functions run under Node when it is installed; the build step runs against a stand-in for docker."""
import json
import os
import subprocess
import sys

import pytest

from components.aws import frontend_build
from components.aws.static_content import (
    ALL_VIEWER, BUILD_ROOT, BUILD_STEP, CACHING_DISABLED, HOURLY, IMMUTABLE, ONE_YEAR, REPOSITORY, REVALIDATED,
    build_digest,
)
from components.checksums import PROJECT_ROOT
from components.config import ConfigError, parse_cluster_config
from components.config.frontend import FRONTEND_CONTEXT, FrontendConfig
from program import (
    CLOUDFRONT_PREFIX_LIST, FRONTEND_BUILD, PROJECT, run_program, stack_config, stacks_on, unwrap, with_overrides,
)

AWS_STACKS = stacks_on("aws")
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
FUNCTION = "aws:cloudfront/function:Function"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SPA = "/openmrs/spa/"
ALB_CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
CDN_CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
NAMES = ["openmrs-staging.clinic.example", "emr-staging.clinic.example"]
CLIENTS = ["203.0.113.0/24", "198.51.100.7/32"]


@pytest.fixture(scope="module", params=AWS_STACKS)
def stack(request):
    return request.param


@pytest.fixture(scope="module")
def graph(stack):
    return run_program(stack)


@pytest.fixture(scope="module")
def settings(stack):
    return stack_config(stack)[f"{PROJECT}:aws"]


@pytest.fixture(scope="module")
def named_staging():
    """Staging with its own names and both certificates, as production has."""
    return run_program("aws-staging", with_overrides(stack_config("aws-staging"), aws={
        "certificate_arn": ALB_CERTIFICATE, "domain_names": NAMES, "cdn_certificate_arn": CDN_CERTIFICATE}))


@pytest.fixture(scope="module")
def restricted():
    return run_program("aws-staging",
                       with_overrides(stack_config("aws-staging"), aws={"allowed_client_cidrs": CLIENTS}))


def one(graph, type_, name=None):
    (registration,) = [r for r in graph.of_type(type_) if name is None or r.name == name]
    return registration


def distribution(graph):
    return one(graph, DISTRIBUTION)


def spa_behaviour(graph):
    (behaviour,) = distribution(graph).plain("orderedCacheBehaviors")
    return behaviour


def origin(graph, origin_id):
    (found,) = [o for o in distribution(graph).plain("origins") if o["originId"] == origin_id]
    return found


def tier_outputs(graph):
    (outputs,) = [o for urn, o in graph.component_outputs.items() if urn.endswith("StaticContentTier::o3")]
    return {key: unwrap(value) for key, value in outputs.items()}


def objects(graph) -> dict[str, object]:
    """The uploaded files by their path in the build."""
    return {r.plain("key").removeprefix(SPA.lstrip("/")): r for r in graph.of_type(OBJECT)}


def build_args_of(config) -> dict[str, str]:
    cluster = parse_cluster_config({key.split(":", 1)[1]: value for key, value in config.items()
                                    if key.startswith(f"{PROJECT}:")})
    return cluster.frontend.build_args()


def digest_of(config) -> str:
    return build_digest(PROJECT_ROOT / FRONTEND_CONTEXT, build_args_of(config))


# The bucket ----------------------------------------------------------------------------------------------------

def test_the_bucket_blocks_public_access_encrypts_and_keeps_earlier_builds_a_while(graph):
    bucket = one(graph, "aws:s3/bucket:Bucket", "o3-files")
    block = one(graph, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "o3-files")
    assert block.plain("bucket") == f"{bucket.name}-id"
    assert all(block.plain(key) is True for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                    "restrictPublicBuckets"))
    ownership = one(graph, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", "o3-files")
    assert ownership.plain("rule") == {"objectOwnership": "BucketOwnerEnforced"}  # no ACL can open an object
    (encryption,) = one(graph, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                        "o3-files").plain("rules")
    assert encryption["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    versioning = one(graph, "aws:s3/bucketVersioning:BucketVersioning", "o3-files")
    assert versioning.plain("versioningConfiguration")["status"] == "Enabled"
    (rule,) = one(graph, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "o3-files").plain("rules")
    assert rule["status"] == "Enabled" and rule["filter"] == {"prefix": ""}
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 30}
    assert rule["expiration"] == {"expiredObjectDeleteMarker": True}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}


def test_only_this_distribution_reads_the_bucket_through_its_origin_access_control(graph):
    bucket = one(graph, "aws:s3/bucket:Bucket", "o3-files")
    cdn = distribution(graph)
    statements = {s["Sid"]: s for s in json.loads(one(graph, "aws:s3/bucketPolicy:BucketPolicy", "o3-files")
                                                 .plain("policy"))["Statement"]}
    this_distribution = {"StringEquals": {"AWS:SourceArn": cdn.outputs["arn"]}}
    assert statements["DistributionReads"] == {
        "Sid": "DistributionReads", "Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject", "Resource": bucket.outputs["arn"] + "/*", "Condition": this_distribution}
    # Listing lets a missing file be a 404.
    assert statements["DistributionLists"]["Resource"] == bucket.outputs["arn"]
    assert statements["DistributionLists"]["Condition"] == this_distribution
    assert statements["TlsOnly"]["Effect"] == "Deny"
    assert statements["TlsOnly"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert [s for s in statements.values() if s["Effect"] == "Allow" and s["Principal"] == "*"] == []
    access = one(graph, "aws:cloudfront/originAccessControl:OriginAccessControl")
    assert (access.plain("originAccessControlOriginType"), access.plain("signingBehavior"),
            access.plain("signingProtocol")) == ("s3", "always", "sigv4")
    files = origin(graph, "spa-files")
    assert files["originAccessControlId"] == f"{access.name}-id"
    assert files["domainName"] == bucket.outputs["bucketRegionalDomainName"]
    assert "customOriginConfig" not in files and "s3OriginConfig" not in files  # no website endpoint, no OAI


# The two behaviours ---------------------------------------------------------------------------------------------

def test_the_spa_path_comes_from_s3_cached_as_each_file_says(graph):
    behaviour = spa_behaviour(graph)
    assert behaviour["pathPattern"] == f"{SPA}*" and behaviour["targetOriginId"] == "spa-files"
    assert behaviour["allowedMethods"] == ["GET", "HEAD"] == behaviour["cachedMethods"]
    assert behaviour["viewerProtocolPolicy"] == "redirect-to-https" and behaviour["compress"] is True
    policy = one(graph, "aws:cloudfront/cachePolicy:CachePolicy", "o3-spa")
    assert behaviour["cachePolicyId"] == f"{policy.name}-id"
    # The files' Cache-Control rules: a year for immutable files, revalidation for the others.
    assert (policy.plain("minTtl"), policy.plain("defaultTtl"), policy.plain("maxTtl")) == (0, 0, ONE_YEAR)
    key = policy.plain("parametersInCacheKeyAndForwardedToOrigin")
    assert key["cookiesConfig"] == {"cookieBehavior": "none"} and key["headersConfig"] == {"headerBehavior": "none"}
    assert key["queryStringsConfig"] == {"queryStringBehavior": "none"}
    assert key["enableAcceptEncodingGzip"] is True and key["enableAcceptEncodingBrotli"] is True
    (association,) = behaviour["functionAssociations"]
    assert association == {"eventType": "viewer-request", "functionArn": one(graph, FUNCTION, "o3-spa").outputs["arn"]}


def test_everything_else_goes_to_the_alb_uncached_with_every_method_cookie_query_and_header(graph):
    default = distribution(graph).plain("defaultCacheBehavior")
    assert default["targetOriginId"] == "alb" and default["viewerProtocolPolicy"] == "redirect-to-https"
    assert sorted(default["allowedMethods"]) == ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
    # AWS's CachingDisabled, and AllViewer: every header (Host included), cookie (the ALB's AWSALB and
    # AWSALBCORS, or JSESSIONID) and query string reaches the ALB.
    assert (default["cachePolicyId"], default["originRequestPolicyId"]) == (CACHING_DISABLED, ALL_VIEWER)
    assert CACHING_DISABLED == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    assert ALL_VIEWER == "216adef6-5c7f-47e4-b989-5492eafa07d3"
    (association,) = default["functionAssociations"]
    assert association == {"eventType": "viewer-request", "functionArn": one(graph, FUNCTION, "o3-site").outputs["arn"]}
    alb = origin(graph, "alb")
    assert alb["domainName"] == one(graph, "aws:lb/loadBalancer:LoadBalancer").outputs["dnsName"]
    assert alb["customOriginConfig"]["originReadTimeout"] == 60
    assert alb["customOriginConfig"]["originSslProtocols"] == ["TLSv1.2"]


def test_every_answer_gets_the_local_balancers_security_headers_and_the_files_the_static_servers_policy(graph):
    policies = {p.name: p for p in graph.of_type("aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy")}
    balancers = {
        "strictTransportSecurity": {"accessControlMaxAgeSec": 63072000, "override": True},
        "contentTypeOptions": {"override": True},
        "frameOptions": {"frameOption": "SAMEORIGIN", "override": True},
        "referrerPolicy": {"referrerPolicy": "strict-origin-when-cross-origin", "override": True},
    }
    assert policies["o3-site-security"].plain("securityHeadersConfig") == balancers
    assert policies["o3-spa-security"].plain("securityHeadersConfig") == {**balancers, "contentSecurityPolicy": {
        "contentSecurityPolicy": FrontendConfig().content_security_policy(), "override": True}}
    assert distribution(graph).plain("defaultCacheBehavior")["responseHeadersPolicyId"] == "o3-site-security-id"
    assert spa_behaviour(graph)["responseHeadersPolicyId"] == "o3-spa-security-id"


def test_cloudfront_reaches_the_alb_over_https_exactly_when_the_alb_has_a_certificate(graph, settings, named_staging):
    expected = "https-only" if settings.get("certificate_arn") else "http-only"
    assert origin(graph, "alb")["customOriginConfig"]["originProtocolPolicy"] == expected
    assert origin(named_staging, "alb")["customOriginConfig"]["originProtocolPolicy"] == "https-only"


# TLS and names --------------------------------------------------------------------------------------------------

def test_own_names_are_served_with_tls_1_2_and_http_2_and_3(named_staging):
    cdn = distribution(named_staging)
    assert cdn.plain("aliases") == NAMES
    assert cdn.plain("viewerCertificate") == {"acmCertificateArn": CDN_CERTIFICATE, "sslSupportMethod": "sni-only",
                                              "minimumProtocolVersion": "TLSv1.2_2021"}
    assert cdn.plain("httpVersion") == "http2and3" and cdn.plain("isIpv6Enabled") is True
    assert tier_outputs(named_staging)["url"] == f"https://{NAMES[0]}{SPA}login"
    assert tier_outputs(named_staging)["site_url"] == f"https://{NAMES[0]}/openmrs/"  # the stack's url: CloudFront


def test_production_serves_its_own_names_only(graph, settings):
    cdn = distribution(graph)
    if settings["production"]:
        assert cdn.plain("aliases") == settings["domain_names"]
        assert cdn.plain("viewerCertificate")["minimumProtocolVersion"] == "TLSv1.2_2021"
    else:
        # CloudFront's own name: its certificate takes no minimum but TLSv1 (which it then ignores).
        assert cdn.plain("viewerCertificate") == {"cloudfrontDefaultCertificate": True,
                                                  "minimumProtocolVersion": "TLSv1"}
        assert tier_outputs(graph)["url"] == f"https://{cdn.outputs['domainName']}{SPA}login"


# The build and its upload -------------------------------------------------------------------------------------

def test_the_build_runs_on_the_deploying_machine_once_per_digest_of_its_inputs(graph, stack):
    digest = digest_of(stack_config(stack))
    assert tier_outputs(graph)["build"] == digest
    ((token, run),) = [(t, a) for t, a in graph.invokes if t == "command:local:run"]
    assert run["command"] == str(BUILD_STEP) and run["interpreter"] == [sys.executable]
    assert run["dir"] == str(BUILD_ROOT) and run["assetPaths"] == [f"{digest}/**"]
    environment = run["environment"]
    assert (environment["FRONTEND_DIGEST"], environment["FRONTEND_TAG"]) == (digest, f"{REPOSITORY}:{digest}")
    assert environment["FRONTEND_CONTEXT"] == str(PROJECT_ROOT / FRONTEND_CONTEXT)
    assert json.loads(environment["FRONTEND_BUILD_ARGS"]) == build_args_of(stack_config(stack))
    # Every object is the file of that build.
    for path, uploaded in objects(graph).items():
        assert uploaded.plain("source").path == f"{BUILD_ROOT}/{digest}/{path}"


def test_another_module_version_is_another_build():
    config = stack_config("aws-staging")
    changed = with_overrides(config, frontend={"modules": {"@openmrs/esm-login-app": "5.9.0"}})
    assert digest_of(changed) != digest_of(config)
    assert tier_outputs(run_program("aws-staging", changed))["build"] == digest_of(changed)


def test_each_file_is_uploaded_with_its_type_and_cache_headers(graph):
    uploaded = objects(graph)
    assert set(uploaded) == set(FRONTEND_BUILD) - {"openmrs.0123456789abcdef.js.gz"}  # CloudFront compresses
    headers = {path: (o.plain("contentType"), o.plain("cacheControl")) for path, o in uploaded.items()}
    # As the local static servers send them (components/templates/static-server.conf).
    assert (IMMUTABLE, REVALIDATED, HOURLY) == ("public, max-age=31536000, immutable", "no-cache",
                                                "public, max-age=3600")
    assert headers == {
        "index.html": ("text/html", REVALIDATED),
        "importmap.json": ("application/json", REVALIDATED),
        "routes.registry.json": ("application/json", REVALIDATED),
        "config.json": ("application/json", REVALIDATED),
        "service-worker.js": ("text/javascript", HOURLY),
        "favicon.ico": ("image/x-icon", HOURLY),
        "openmrs.01234567.js": ("text/javascript", HOURLY),  # 8 hex digits are no content hash of the build's
        "openmrs.0123456789abcdef.js": ("text/javascript", IMMUTABLE),
        "openmrs.0123456789abcdef.js.map": ("application/json", IMMUTABLE),
        "fedcba9876543210.js": ("text/javascript", IMMUTABLE),
        "manifest.4e2db7544da6bb3185ade5df4f3bbac9.json": ("application/json", IMMUTABLE),
        "openmrs-esm-login-app-5.8.1/openmrs-esm-login-app.js": ("text/javascript", IMMUTABLE),
        "openmrs-esm-login-app-5.8.1/574.js": ("text/javascript", IMMUTABLE),
        "openmrs-esm-login-app-5.8.1/routes.json": ("application/json", IMMUTABLE),
        "openmrs-esm-login-app-5.8.1/assets/logo.svg": ("image/svg+xml", IMMUTABLE),
        "openmrs-esm-home-app-5.4.1-pre.12/openmrs-esm-home-app.js": ("text/javascript", IMMUTABLE),
    }
    bucket = one(graph, "aws:s3/bucket:Bucket", "o3-files")
    assert {o.plain("bucket") for o in uploaded.values()} == {f"{bucket.name}-id"}
    assert not [o for o in uploaded.values() if o.plain("contentEncoding")]


def test_the_entry_points_are_written_after_every_file_they_can_name(graph):
    uploaded = objects(graph)
    entry = {"index.html", "importmap.json", "routes.registry.json", "config.json"}
    others = {o.urn for path, o in uploaded.items() if path not in entry}
    for path in entry:
        assert others <= uploaded[path].dependencies
    assert not [o for path, o in uploaded.items() if path not in entry and o.dependencies & others]


# The viewer functions -------------------------------------------------------------------------------------------

def viewer_request(code: str, uri: str, ip: str = "198.51.100.7") -> dict:
    """What the function returns for a GET of `uri` from `ip`: the request it passes on, or its own response."""
    event = {"version": "1.0", "context": {"eventType": "viewer-request"}, "viewer": {"ip": ip},
             "request": {"method": "GET", "uri": uri, "querystring": {}, "headers": {"host": {"value": NAMES[0]}},
                         "cookies": {}}}
    script = f"{code}\nconsole.log(JSON.stringify(handler({json.dumps(event)})));"
    return json.loads(subprocess.run(["node", "-e", script], check=True, capture_output=True, text=True).stdout)


def code_of(graph, name):
    function = one(graph, FUNCTION, name)
    assert function.plain("runtime") == "cloudfront-js-2.0" and function.plain("publish") is True
    return function.plain("code")


@pytest.mark.parametrize("uri, served", [
    ("/openmrs/spa/login", "/openmrs/spa/index.html"), ("/openmrs/spa/home", "/openmrs/spa/index.html"),
    ("/openmrs/spa/patient/8673ee4f-e2ab-4077-ba55-4980f408773e/chart", "/openmrs/spa/index.html"),
    ("/openmrs/spa/", "/openmrs/spa/index.html"),
    ("/openmrs/spa/importmap.json", "/openmrs/spa/importmap.json"),
    ("/openmrs/spa/openmrs-esm-login-app-5.8.1/574.js", "/openmrs/spa/openmrs-esm-login-app-5.8.1/574.js"),
    ("/openmrs/spa/missing.js", "/openmrs/spa/missing.js"),
])
def test_client_side_routes_are_answered_with_index_html_and_files_are_left_alone(graph, uri, served):
    assert viewer_request(code_of(graph, "o3-spa"), uri)["uri"] == served


def test_the_site_root_leads_to_the_application_and_the_backend_is_left_alone(graph):
    code = code_of(graph, "o3-site")
    home = viewer_request(code, "/")
    assert home["statusCode"] == 302 and home["headers"]["location"]["value"] == f"{SPA}home"
    assert viewer_request(code, SPA[:-1])["headers"]["location"]["value"] == SPA
    for uri in ("/openmrs/ws/rest/v1/session", "/openmrs/", "/openmrs/login.htm"):
        assert viewer_request(code, uri)["uri"] == uri


def test_no_distribution_wide_error_page_hides_the_backends_answers(graph):
    assert not distribution(graph).plain("customErrorResponses")
    assert "defaultRootObject" not in distribution(graph).inputs


# Who may come ---------------------------------------------------------------------------------------------------

def test_the_alb_takes_cloudfronts_requests_only(graph, settings):
    to_balancer = [r for r in graph.of_type(INGRESS) if r.plain("securityGroupId") == "net-balancer-id"]
    (rule,) = to_balancer
    port = 443 if settings.get("certificate_arn") else 80
    assert (rule.plain("prefixListId"), rule.plain("fromPort"), rule.plain("toPort")) == (
        CLOUDFRONT_PREFIX_LIST, port, port)
    assert "cidrIpv4" not in rule.inputs
    (lookup,) = [a for t, a in graph.invokes if t == "aws:ec2/getManagedPrefixList:getManagedPrefixList"]
    assert lookup["name"] == "com.amazonaws.global.cloudfront.origin-facing"


def test_listed_clients_are_checked_at_the_edge_over_ipv4(restricted):
    assert distribution(restricted).plain("isIpv6Enabled") is False
    for name in ("o3-spa", "o3-site"):
        code = code_of(restricted, name)
        assert viewer_request(code, "/openmrs/ws/rest/v1/session", ip="203.0.113.200").get("uri")
        assert viewer_request(code, "/openmrs/spa/login", ip="198.51.100.7").get("uri")
        for outsider in ("198.51.100.8", "192.0.2.1", "2001:db8::1"):
            assert viewer_request(code, "/openmrs/spa/login", ip=outsider) == {"statusCode": 403,
                                                                               "statusDescription": "Forbidden"}


def test_everyone_may_come_when_the_list_is_everyone(graph, settings):
    assert settings["allowed_client_cidrs"] == ["0.0.0.0/0"]
    assert all("CLIENTS" not in code_of(graph, name) for name in ("o3-spa", "o3-site"))


def test_without_the_o3_interface_nothing_of_it_is_made_and_the_alb_takes_the_clients():
    config = with_overrides(stack_config("aws-staging"), frontend={"enabled": False},
                            aws={"allowed_client_cidrs": CLIENTS})
    graph = run_program("aws-staging", config)
    assert not [r for r in graph.registrations if r.type.startswith("aws:cloudfront") or r.name.startswith("o3-")]
    assert not [t for t, _ in graph.invokes if t == "command:local:run"]
    balancer_url = [o for urn, o in graph.component_outputs.items() if urn.endswith("LoadBalancerTier::lb")][0]["url"]
    assert tier_outputs(graph) == {"url": unwrap(balancer_url), "site_url": unwrap(balancer_url), "build": ""}
    sources = {r.plain("cidrIpv4") for r in graph.of_type(INGRESS) if r.plain("securityGroupId") == "net-balancer-id"}
    assert sources == set(CLIENTS)


def test_every_resource_of_the_tier_is_its_child(graph):
    (tier,) = [r.urn for r in graph.registrations if r.type == "openmrs:cluster:StaticContentTier"]
    made = [r for r in graph.registrations if r.type.startswith(("aws:cloudfront", "aws:s3/bucketObjectv2"))]
    assert made and all(r.parent == tier for r in made)


# The configuration ----------------------------------------------------------------------------------------------

def problems(stack, config) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        run_program(stack, config)
    return raised.value.problems


@pytest.mark.parametrize("aws_change, frontend_change, key, words", [
    ({"domain_names": ["https://openmrs.clinic.example"]}, {}, "aws.domain_names", "is not a host name"),
    ({"domain_names": ["OpenMRS.clinic.example"]}, {}, "aws.domain_names", "lowercase"),
    ({"domain_names": ["openmrs"]}, {}, "aws.domain_names", "is not a host name"),
    ({"domain_names": [NAMES[0], NAMES[0]]}, {}, "aws.domain_names", "lists a name twice"),
    ({"cdn_certificate_arn": ALB_CERTIFICATE}, {}, "aws.cdn_certificate_arn", "in us-east-1"),
    ({"cdn_certificate_arn": "my-certificate"}, {}, "aws.cdn_certificate_arn", "in us-east-1"),
    ({"certificate_arn": ALB_CERTIFICATE}, {}, "aws.domain_names", "which aws.certificate_arn must cover"),
    ({"domain_names": NAMES, "cdn_certificate_arn": CDN_CERTIFICATE}, {}, "aws.certificate_arn", "in clear"),
    ({"domain_names": NAMES, "certificate_arn": ALB_CERTIFICATE}, {}, "aws.cdn_certificate_arn",
     "only with a certificate for them"),
    ({"cdn_certificate_arn": CDN_CERTIFICATE}, {}, "aws.domain_names", "serves the names listed here"),
    ({"domain_names": NAMES}, {"enabled": False}, "aws.domain_names", "frontend.enabled false does not make"),
    ({"cdn_certificate_arn": CDN_CERTIFICATE}, {"enabled": False}, "aws.cdn_certificate_arn",
     "frontend.enabled false does not make"),
])
def test_names_and_certificates_that_cannot_serve_are_refused_before_any_resource(aws_change, frontend_change, key,
                                                                                   words):
    config = with_overrides(stack_config("aws-staging"), aws=aws_change, frontend=frontend_change)
    (problem,) = [p for p in problems("aws-staging", config) if p.startswith(f"{PROJECT}:{key}")]
    assert words in problem


def test_production_needs_its_own_names():
    config = stack_config("aws-prod")
    config[f"{PROJECT}:aws"] = {key: value for key, value in config[f"{PROJECT}:aws"].items()
                                if key not in ("domain_names", "cdn_certificate_arn")}
    assert [p.split(":")[1] for p in problems("aws-prod", config)] == ["aws.domain_names"]


# The build step -------------------------------------------------------------------------------------------------

FAKE_DOCKER = """\
#!{python}
# A stand-in for docker: records each call; `cp` copies the files of a built image ({files}).
import json, os, sys
from pathlib import Path
with open(os.environ["DOCKER_CALLS"], "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1] == "create":
    print("container-1")
elif sys.argv[1] == "cp":
    for name in {files}:
        target = Path(sys.argv[3]) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(name)
"""


def run_step(tmp_path, files, digest="0123456789ab"):
    """The build step as the command provider runs it: by its path, in the build folder."""
    bin_dir, work = tmp_path / "bin", tmp_path / "o3-frontend"
    bin_dir.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable, files=json.dumps(files)))
    docker.chmod(0o755)
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                   "DOCKER_CALLS": str(tmp_path / "calls"), "FRONTEND_DIGEST": digest,
                   "FRONTEND_TAG": f"{REPOSITORY}:{digest}", "FRONTEND_CONTEXT": "/context",
                   "FRONTEND_BUILD_ARGS": json.dumps({"SPA_DEFAULT_LOCALE": "fr", "ASSEMBLE_CONFIG": "{}"})}
    result = subprocess.run([sys.executable, str(BUILD_STEP)], cwd=work, env=environment, capture_output=True,
                            text=True)
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return result, [json.loads(call) for call in calls], work


def test_the_step_builds_the_image_copies_its_files_out_and_does_it_once(tmp_path):
    result, calls, work = run_step(tmp_path, ["index.html", "openmrs-esm-login-app-5.8.1/574.js"])
    assert result.returncode == 0, result.stderr
    tag = f"{REPOSITORY}:0123456789ab"
    assert calls == [
        ["build", "--tag", tag, "--build-arg=ASSEMBLE_CONFIG={}", "--build-arg=SPA_DEFAULT_LOCALE=fr", "/context"],
        ["create", tag, "true"],
        ["cp", f"container-1:{frontend_build.BUILT_AT}/.", calls[2][2]],
        ["rm", "container-1"],
    ]
    chunk = "openmrs-esm-login-app-5.8.1/574.js"
    assert (work / "0123456789ab" / chunk).read_text() == chunk
    assert not list(work.glob(".partial-*"))
    again, calls_again, _ = run_step(tmp_path, ["index.html"])
    assert again.returncode == 0 and calls_again == calls  # no docker call at all


def test_a_build_without_index_html_fails_and_is_not_kept(tmp_path):
    result, _, work = run_step(tmp_path, ["openmrs.js"])
    assert result.returncode != 0 and "/usr/share/openmrs-spa/index.html" in result.stderr
    assert list(work.iterdir()) == []


def test_an_interrupted_copy_is_cleared_by_the_next_build(tmp_path):
    (tmp_path / "o3-frontend" / ".partial-x").mkdir(parents=True)
    result, _, work = run_step(tmp_path, ["index.html"])
    assert result.returncode == 0 and sorted(p.name for p in work.iterdir()) == ["0123456789ab"]
