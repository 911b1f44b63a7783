"""The application user of the database, made at the start of every task by a short first container.

Why there, and not once at deployment: the database is in private subnets that the deploying machine does
not reach, and RDS rotates the master password every 7 days. A task's first container gets the master
password that is current when the task starts (ECS resolves secrets then), logs in over TLS, and creates
the application user or sets its password again, with every privilege on the OpenMRS database and nothing
else (no global privilege, no GRANT OPTION). The node's container starts only once it has succeeded, and
logs in as that user, whose password nothing rotates. Running it again is harmless: the statements are
idempotent, and a password set to the same value leaves open connections alone.

The container is the database monitor's image (images/db-monitor: Python and PyMySQL from Debian, run as
nobody), with this script in place of the monitor."""
import pulumi

from ..checksums import PROJECT_ROOT
from .app_image import pushed_image, tag_of

CONTAINER = "database-user"
IMAGE_CONTEXT = "images/db-monitor"
# The image keeps no state: the current one and two earlier ones to roll back to are enough.
KEPT_IMAGES = 3

# Retries cover a Multi-AZ failover at the moment a task starts; a wrong master password (a rotation in the
# seconds between ECS reading it and this login) fails the task, and ECS starts another with the new one.
SCRIPT = r'''
import os, sys, time
import pymysql

env = os.environ
for attempt in range(15):
    try:
        connection = pymysql.connect(
            host=env["DB_HOST"], port=int(env["DB_PORT"]), user=env["ADMIN_USER"], password=env["ADMIN_PASSWORD"],
            ssl={"check_hostname": False}, connect_timeout=10, autocommit=True)
        break
    except pymysql.err.OperationalError as error:
        if error.args and error.args[0] == 1045:
            sys.exit(f"the master password was refused: {error}")
        print(f"the database does not answer yet: {error}", flush=True)
        time.sleep(10)
else:
    sys.exit("the database did not answer in 150 s")
user, password, database = env["APP_USER"], env["APP_PASSWORD"], env["DB_NAME"]
with connection.cursor() as cursor:
    cursor.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s REQUIRE SSL", (user, password))
    cursor.execute("ALTER USER %s@'%%' IDENTIFIED BY %s REQUIRE SSL", (user, password))
    cursor.execute("GRANT ALL PRIVILEGES ON `" + database + "`.* TO %s@'%%'", (user,))
connection.close()
print(f"the application user {user} may use the database {database}", flush=True)
'''


def image(name: str, platform: str, component: pulumi.ComponentResource) -> pulumi.Output[str]:
    """Tagged by its context's content, so an unchanged image is neither built nor replaced."""
    return pushed_image(f"{name}-database-user-image", f"{name}-database-user-images", IMAGE_CONTEXT,
                        tag_of(PROJECT_ROOT / IMAGE_CONTEXT), KEPT_IMAGES, platform, component).digest


def container(image_reference: str, host: str, port: str, database: str, user: str, admin_user: str,
              admin_password: str, app_password: str, log_options: dict[str, str]) -> dict:
    """The first container of a node's task; the passwords are Secrets Manager references."""
    environment = {"DB_HOST": host, "DB_PORT": port, "DB_NAME": database, "APP_USER": user, "ADMIN_USER": admin_user}
    return {
        "name": CONTAINER,
        "image": image_reference,
        "essential": False,
        "entryPoint": ["python3", "-c"],
        "command": [SCRIPT],
        "environment": [{"name": key, "value": value} for key, value in sorted(environment.items())],
        "secrets": [{"name": "ADMIN_PASSWORD", "valueFrom": admin_password},
                    {"name": "APP_PASSWORD", "valueFrom": app_password}],
        "linuxParameters": {"capabilities": {"drop": ["ALL"]}},
        "logConfiguration": {"logDriver": "awslogs", "options": {**log_options, "awslogs-stream-prefix": CONTAINER}},
    }

