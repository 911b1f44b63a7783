"""The step from the first task to app.nodes, made through the AWS provider rather than a CLI on the deploying
machine: a small Lambda function that sets the service's desired count, invoked by Pulumi (a Lambda
invocation resource) with the provider's own credentials, so aws:profile and assumed roles apply as they
do to every other resource.

It does not wait for the new tasks: they start side by side, each joins the target group when its health
check passes, and the autoscaler's target is registered right after, whatever their start takes. The
invocation runs again only when app.nodes changes. The function may update this one service and write
its own log group, nothing else."""
import json

import pulumi
import pulumi_aws as aws

# Python runtimes carry boto3; nothing is packaged with the function.
RUNTIME = "python3.12"
HANDLER = r'''
import boto3


def handler(event, context):
    boto3.client("ecs").update_service(cluster=event["cluster"], service=event["service"],
                                       desiredCount=event["desiredCount"])
    return {"desiredCount": event["desiredCount"]}
'''


def _role(name: str, service_arn: pulumi.Output[str], log_group: aws.cloudwatch.LogGroup,
          child: pulumi.ResourceOptions) -> aws.iam.Role:
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = aws.iam.Role(name, assume_role_policy=json.dumps(trust), opts=child)
    aws.iam.RolePolicy(
        name, role=role.id,
        policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ecs:UpdateService", "Resource": service_arn},
            {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": pulumi.Output.concat(log_group.arn, ":*")},
        ]}),
        opts=child,
    )
    return role


def build(component: pulumi.ComponentResource, name: str, cluster_name: pulumi.Output[str],
          service: "aws.ecs.Service", nodes: int, retention_days: int) -> aws.lambda_.Invocation:
    """Raises `service` to `nodes` tasks once it exists (its first task healthy); returns the invocation,
    which what must follow the scale-out depends on."""
    child = pulumi.ResourceOptions(parent=component)
    logical = f"{name}-scale-out"
    log_group = aws.cloudwatch.LogGroup(logical, retention_in_days=retention_days, opts=child)
    role = _role(logical, service.arn, log_group, child)
    function = aws.lambda_.Function(
        logical,
        runtime=RUNTIME,
        handler="index.handler",
        code=pulumi.AssetArchive({"index.py": pulumi.StringAsset(HANDLER)}),
        role=role.arn,
        timeout=60,
        logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=log_group.name),
        opts=child,
    )
    return aws.lambda_.Invocation(
        logical,
        function_name=function.name,
        input=pulumi.Output.json_dumps({"cluster": cluster_name, "service": service.name, "desiredCount": nodes}),
        opts=pulumi.ResourceOptions(parent=component, depends_on=[service]),
    )
