"""The AWS platform: ALB, ECS Fargate, EFS and RDS Multi-AZ behind the same components."""
