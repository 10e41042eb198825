"""The production deployment in docker/, checked without a docker engine.

The compose file is parsed and interpolated with docker/.env.example the way `docker compose` would; every
build input the Dockerfile names must exist, the image must install the repository's own pins, and the
services must agree with each other (URLs, secrets, volumes, health checks), and the production profile's settings
come from the one file the scripts read too. One check is live: the metadata DB URL scheme the deployment uses
migrates on the real Postgres server of this machine.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
import uuid
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlparse

import pytest
import sqlalchemy
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"
PROFILE_FILE = REPO_ROOT / "profiles" / "production.env"
POSTGRES_ADMIN_URL = os.environ.get(
    "PZ_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

AIRFLOW_SERVICES = {
    "airflow-api-server": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a compose env file (comments and blank lines skipped)."""
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            entries[name.strip()] = value.strip()
    return entries


def interpolate(value, variables: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution, recursively; $$ is a literal $."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if variables.get(name):
            return variables[name]
        if op and op.endswith("-"):
            return arg
        raise AssertionError(f"${{{name}}} is unset and has no default: {arg or 'required'}")

    return _VARIABLE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def referenced_variables(text: str) -> set[str]:
    return {match["name"] for match in _VARIABLE.finditer(text.replace("$$", ""))}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        statement = (pending + line).strip()
        pending = ""
        keyword, _, arguments = statement.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(env_example) -> dict:
    """The compose file as `docker compose config` would see it with docker/.env.example as its .env: a service's
    `env_file` entries under its `environment`, which wins."""
    config = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env_example)
    for service in config["services"].values():
        if "env_file" in service:
            from_file = read_env_file((DOCKER_DIR / service["env_file"]).resolve())
            service["environment"] = {**from_file, **service.get("environment", {})}
    return config


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    build = yaml.safe_load(COMPOSE_FILE.read_text())["x-airflow-common"]["build"]
    return dockerfile_instructions((DOCKER_DIR / build["context"] / build["dockerfile"]).resolve())


@pytest.fixture(scope="module")
def image_env(dockerfile) -> dict[str, str]:
    """ENV of the image (KEY=value form), $VAR references to earlier keys expanded."""
    variables: dict[str, str] = {}
    for keyword, arguments in dockerfile:
        if keyword == "ENV":
            for assignment in shlex.split(arguments):
                name, _, value = assignment.partition("=")
                variables[name] = re.sub(r"\$(\w+)", lambda m: variables.get(m[1], m[0]), value)
    return variables


def test_the_deployment_runs_every_production_service(compose):
    expected = {"postgres", "redis", "object-store", "airflow-init", *AIRFLOW_SERVICES}
    assert set(compose["services"]) == expected
    for service, command in AIRFLOW_SERVICES.items():
        assert compose["services"][service]["command"] == command


def test_every_build_context_and_dockerfile_exists(compose):
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            context = (DOCKER_DIR / service["build"]["context"]).resolve()
            assert context.is_dir(), (name, context)
            assert (context / service["build"]["dockerfile"]).is_file(), name


def test_external_images_are_pinned_to_a_version(compose):
    for name, service in compose["services"].items():
        if "build" not in service:
            repository, _, tag = service["image"].partition(":")
            assert tag and tag != "latest", f"{name}: image {service['image']} has no version tag"


def test_airflow_services_share_one_image_and_its_settings(compose):
    airflow = {name: compose["services"][name] for name in [*AIRFLOW_SERVICES, "airflow-init"]}
    assert len({service["image"] for service in airflow.values()}) == 1
    assert len({repr(service["build"]) for service in airflow.values()}) == 1
    shared = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
              "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL")  # fmt: skip
    for key in shared:
        values = {service["environment"][key] for service in airflow.values()}
        assert len(values) == 1, f"{key} differs between the Airflow services"


def test_fab_is_the_auth_manager_and_the_image_installs_it(compose):
    env = compose["services"]["airflow-api-server"]["environment"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == FAB_AUTH_MANAGER
    assert "apache-airflow-providers-fab" in read_requirements(REPO_ROOT / "requirements.txt")
    assert {"AIRFLOW_ADMIN_USERNAME", "AIRFLOW_ADMIN_PASSWORD"} <= set(
        compose["services"]["airflow-init"]["environment"]
    )


def test_celery_reaches_the_redis_service_with_its_password(compose):
    env = compose["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "apache-airflow-providers-celery" in read_requirements(REPO_ROOT / "requirements.txt")
    broker = urlparse(env["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis"
    assert compose["services"]["redis"]["command"][-1] == broker.password
    assert compose["services"]["redis"]["environment"]["REDISCLI_AUTH"] == broker.password


def test_the_metadata_db_is_the_postgres_service(compose):
    postgres_env = compose["services"]["postgres"]["environment"]
    env = compose["services"]["airflow-scheduler"]["environment"]
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"):
        url = urlparse(env[key])
        assert url.scheme == "postgresql+psycopg", f"{key}: psycopg 3 is the driver requirements.txt installs"
        assert (url.hostname, url.username, url.password, url.path) == (
            "postgres", postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_PASSWORD"],
            "/" + postgres_env["POSTGRES_DB"],
        )  # fmt: skip
    result_backend = env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert result_backend == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_the_registry_db_is_created_by_the_postgres_init_script(compose):
    registry = urlparse(compose["services"]["airflow-worker"]["environment"]["PZ_DATABASE_URL"])
    mounts = compose["services"]["postgres"]["volumes"]
    init_script = next(
        DOCKER_DIR / mount.split(":")[0] for mount in mounts if "/docker-entrypoint-initdb.d/" in mount
    )
    sql = init_script.read_text()
    assert f"CREATE ROLE {registry.username} LOGIN" in sql
    assert f"CREATE DATABASE {registry.path.lstrip('/')} OWNER {registry.username}" in sql
    postgres_env = compose["services"]["postgres"]["environment"]
    assert postgres_env["PZ_REGISTRY_PASSWORD"] == registry.password


def test_tasks_reach_the_execution_api_of_the_api_server(compose):
    env = compose["services"]["airflow-worker"]["environment"]
    execution_api = urlparse(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert execution_api.hostname == "airflow-api-server"
    assert execution_api.port == int(env["AIRFLOW__API__PORT"])
    assert execution_api.path == "/execution/"
    published = compose["services"]["airflow-api-server"]["ports"][0]
    assert published.endswith(f":{env['AIRFLOW__API__PORT']}")


def test_the_object_store_is_the_minio_service(compose):
    env = compose["services"]["airflow-worker"]["environment"]
    minio_env = compose["services"]["object-store"]["environment"]
    assert urlparse(env["PZ_S3_ENDPOINT_URL"]).hostname == "object-store"
    assert (env["PZ_S3_ACCESS_KEY_ID"], env["PZ_S3_SECRET_ACCESS_KEY"]) == (
        minio_env["MINIO_ROOT_USER"], minio_env["MINIO_ROOT_PASSWORD"],
    )  # fmt: skip
    assert urlparse(env["PZ_STORAGE_URL"]).scheme == "s3"


def test_every_variable_is_in_the_env_example_and_nothing_else_is(env_example):
    used = referenced_variables(COMPOSE_FILE.read_text())
    assert used == set(env_example), {
        "used but not in .env.example": sorted(used - set(env_example)),
        "in .env.example but unused": sorted(set(env_example) - used),
    }


def test_services_start_after_what_they_need(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    for name in AIRFLOW_SERVICES:
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
        assert "healthcheck" in services[name], name
    assert services["airflow-init"]["restart"] == "no"


def test_volumes_are_declared_and_match_the_image_folders(compose, image_env):
    declared = set(compose["volumes"])
    mounts = {}
    for service in compose["services"].values():
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            if not source.startswith("."):
                assert source in declared, f"volume {source} is not declared"
                mounts[source] = target
    assert mounts["pz-data"] == image_env["PZ_STATE_DIR"]
    assert mounts["airflow-logs"] == image_env["AIRFLOW_HOME"] + "/logs"


def test_the_image_base_is_the_projects_python(dockerfile):
    base = next(arguments for keyword, arguments in dockerfile if keyword == "FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim-\w+", base)
    assert match, base
    required = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == f">={match[1]}.{match[2]}"
    # The image runs the Python minor version the tests run on.
    assert (int(match[1]), int(match[2])) == sys.version_info[:2]


def test_every_copy_source_exists_and_is_in_the_build_context(dockerfile):
    ignored = [
        line.strip()
        for line in (DOCKER_DIR / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [shlex.split(arguments) for keyword, arguments in dockerfile if keyword == "COPY"]
    assert copies
    for words in copies:
        sources = [word for word in words if not word.startswith("--")][:-1]
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"COPY {source}: no such file in the build context"
            assert not any(fnmatch(source, pattern) for pattern in ignored), f"COPY {source} is dockerignored"


def test_the_image_installs_the_repository_pins(dockerfile, image_env):
    copied = {}
    for keyword, arguments in dockerfile:
        if keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            for source in sources:
                copied[source] = destination
    installs = " ".join(arguments for keyword, arguments in dockerfile if keyword == "RUN")
    installed_as = copied["requirements.txt"].rstrip("/") + "/requirements.txt"
    assert f"-r {installed_as}" in installs, "the image does not install requirements.txt"
    assert "--no-deps ." in installs, "pzlib itself is installed without re-resolving the pins"


def read_requirements(path: Path) -> dict[str, str]:
    """{normalized name: pinned version} of a requirements file; fails on an unpinned line."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, separator, version = line.partition("==")
            assert separator and version, f"{path.name}: {line!r} is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_the_airflow_services_read_the_profile_file_the_scripts_read_and_repeat_none_of_it():
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    env_file = raw["x-airflow-common"]["env_file"]
    assert (DOCKER_DIR / env_file).resolve() == PROFILE_FILE
    assert "profiles/production.env" in (REPO_ROOT / "scripts" / "airflow" / "env.sh").read_text()
    profile = read_env_file(PROFILE_FILE)
    repeated = set(profile) & set(raw["x-airflow-common"]["environment"])
    assert not repeated, f"set in both docker/compose.yaml and {PROFILE_FILE.name}: {sorted(repeated)}"
    assert not {name for name in profile if "SECRET" in name or "PASSWORD" in name or "FERNET" in name}


@pytest.mark.parametrize("script", sorted(DOCKER_DIR.rglob("*.sh")), ids=lambda path: path.name)
def test_shell_scripts_parse(script):
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    checked = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_init_service_runs_the_init_script_the_image_installs(compose, dockerfile):
    entrypoint = compose["services"]["airflow-init"]["entrypoint"]
    installed = {
        shlex.split(arguments)[-1]: shlex.split(arguments)[0]
        for keyword, arguments in dockerfile
        if keyword == "COPY"
    }
    script = entrypoint[-1]
    assert f"/usr/local/bin/{script}" in installed
    assert (REPO_ROOT / installed[f"/usr/local/bin/{script}"]).is_file()


@pytest.fixture
def throwaway_postgres_db() -> str:
    """URL of a new empty database on the test Postgres server, dropped afterwards."""
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"pz_airflow_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sqlalchemy.exc.OperationalError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Postgres at {POSTGRES_ADMIN_URL} (CI=true runs every test): {error}")
        pytest.skip(f"no Postgres at {POSTGRES_ADMIN_URL}")
    try:
        yield sqlalchemy.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_the_deployments_metadata_db_settings_migrate_on_postgres(compose, throwaway_postgres_db, tmp_path):
    """airflow-init's `airflow db migrate` with the deployment's URL schemes, on a real server."""
    env = compose["services"]["airflow-init"]["environment"]
    server = urlparse(throwaway_postgres_db)
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"):
        # The deployment's scheme (driver) on this machine's server.
        environment[key] = urlparse(env[key])._replace(netloc=server.netloc, path=server.path).geturl()
    environment.update(
        AIRFLOW_HOME=str(tmp_path),
        AIRFLOW_CONFIG=str(REPO_ROOT / "airflow.cfg"),
        PZ_PLATFORM_ROOT=str(REPO_ROOT),
    )
    airflow = Path(sys.executable).parent / "airflow"
    migrated = subprocess.run(
        [airflow, "db", "migrate"], env=environment, capture_output=True, text=True, timeout=600
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    with sqlalchemy.create_engine(throwaway_postgres_db).connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM dag").scalar() == 0
