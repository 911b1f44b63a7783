"""The ALB's access logs (every request: client, path, status, latency, target): an S3 bucket of their own,
encrypted, private, reachable over TLS only, kept aws.log_retention_days like the other logs.

Encryption is SSE-S3 because it is the only one ALB access logs support. Elastic Load Balancing writes with
its own account in the regions that existed before August 2022, and as a service principal in later ones."""
import pulumi
import pulumi_aws as aws

PREFIX = "alb"
# Elastic Load Balancing's account per region, for the regions available before August 2022 (AWS's "Enable
# access logs for your Application Load Balancer", step 2).
ELB_ACCOUNTS = {
    "us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-1": "027434742980",
    "us-west-2": "797873946194", "af-south-1": "098369216593", "ap-east-1": "754344448648",
    "ap-southeast-3": "589379963580", "ap-south-1": "718504428378", "ap-northeast-3": "383597477331",
    "ap-northeast-2": "600734575887", "ap-southeast-1": "114774131450", "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864", "ca-central-1": "985666609251", "eu-central-1": "054676820928",
    "eu-west-1": "156460612806", "eu-west-2": "652711504416", "eu-south-1": "635631232127",
    "eu-west-3": "009996457667", "eu-north-1": "897822967062", "me-south-1": "076674570225",
    "sa-east-1": "507241528517", "us-gov-west-1": "048591011584", "us-gov-east-1": "190560391635",
    "cn-north-1": "638102146993", "cn-northwest-1": "037604701340",
}
LOG_DELIVERY_SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"


def writer(region: str) -> dict:
    """Who writes the logs in `region`."""
    if region in ELB_ACCOUNTS:
        return {"AWS": ELB_ACCOUNTS[region]}
    return {"Service": LOG_DELIVERY_SERVICE}


def bucket(component: pulumi.ComponentResource, name: str, region: str, retention_days: int,
           production: bool) -> tuple[aws.s3.Bucket, aws.s3.BucketPolicy]:
    """The bucket and its policy, which the ALB needs before it can turn the logs on. In production the bucket
    is kept on a destroy with what it holds; elsewhere it goes with the stack."""
    child = pulumi.ResourceOptions(parent=component)
    logical = f"{name}-access-logs"
    logs = aws.s3.Bucket(logical, force_destroy=not production, opts=child)
    aws.s3.BucketPublicAccessBlock(logical, bucket=logs.id, block_public_acls=True, block_public_policy=True,
                                   ignore_public_acls=True, restrict_public_buckets=True, opts=child)
    aws.s3.BucketOwnershipControls(
        logical, bucket=logs.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=child)
    aws.s3.BucketServerSideEncryptionConfiguration(
        logical, bucket=logs.id,
        rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
            apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="AES256"))],
        opts=child)
    aws.s3.BucketLifecycleConfiguration(
        logical, bucket=logs.id,
        rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-access-logs", status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=f"{PREFIX}/"),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=retention_days))],
        opts=child)
    policy = aws.s3.BucketPolicy(
        logical, bucket=logs.id,
        policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "LoadBalancerWrites", "Effect": "Allow", "Principal": writer(region), "Action": "s3:PutObject",
             "Resource": pulumi.Output.concat(logs.arn, f"/{PREFIX}/AWSLogs/*")},
            {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [logs.arn, pulumi.Output.concat(logs.arn, "/*")],
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ]}),
        opts=child)
    return logs, policy
