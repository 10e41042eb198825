"""scripts/airflow/ (`make up`, `make down`) on a real instance of their own: the api-server starts first and
the other services once it answers; `make down` stops the scheduler first and the api-server last; `make up`
brings back a half-dead set (a service killed, its orphaned children alive) and keeps what runs; each instance
has secrets of its own, and a JWT signed with the secret airflow.cfg once committed is refused.

The tests run in file order on one instance: the last one stops it.
"""

from __future__ import annotations

import configparser
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import jwt
import psutil
import pytest
from fixtures.airflow import AIRFLOW_SCRIPTS, REPO_ROOT, AirflowServices, airflow_environment, start_airflow

pytestmark = pytest.mark.slow

SERVICES = ("api-server", "dag-processor", "triggerer", "scheduler")
OLD_COMMITTED_JWT_SECRET = "pz-platform-embedded-default-jwt-secret"
"""The [api_auth] jwt_secret airflow.cfg held until every instance got its own (too short for HS512, too)."""
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) ")


@pytest.fixture(scope="module")
def instance(tmp_path_factory) -> AirflowServices:
    with start_airflow(tmp_path_factory.mktemp("airflow_scripts")) as services:
        yield services


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def session_processes(session_id: int) -> list[int]:
    """Live processes of a session (a service and what it started)."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session_id and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except (OSError, psutil.Error):
            continue
    return found


def service_pids(instance: AirflowServices) -> dict[str, int]:
    return {service: instance.service_pid(service) for service in SERVICES}


def log_times(instance: AirflowServices, service: str, message: str = "") -> list[datetime]:
    """Times of the service's log lines (containing ``message``)."""
    log = instance.state_dir / "logs" / "services" / f"{service}.log"
    return [datetime.fromisoformat(match[1]) for line in log.read_text().splitlines()
            if message in line and (match := LOG_TIME.match(line))]


def test_up_starts_the_api_server_first_and_the_others_once_it_answers(instance):
    api_ready = log_times(instance, "api-server", "Application startup complete.")[0]
    for service in ("dag-processor", "triggerer", "scheduler"):
        assert log_times(instance, service)[0] > api_ready, service
    started = {service: psutil.Process(pid).create_time() for service, pid in service_pids(instance).items()}
    assert min(started, key=started.get) == "api-server"


def test_each_instance_makes_its_own_secrets_and_keeps_them_to_its_owner(tmp_path):
    def secrets_of(home: Path) -> tuple[str, str]:
        shown = subprocess.run(
            ["bash", "-c", 'source "$1" && echo "$AIRFLOW__API_AUTH__JWT_SECRET $AIRFLOW__API__SECRET_KEY"',
             "env", AIRFLOW_SCRIPTS / "env.sh"],
            env=airflow_environment(home), capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        jwt_secret, secret_key = shown.stdout.split()
        return jwt_secret, secret_key

    first, second = secrets_of(tmp_path / "one"), secrets_of(tmp_path / "two")

    assert first != second and first[0] != first[1] and len(first[0]) >= 64
    assert secrets_of(tmp_path / "one") == first  # kept across restarts
    for home in ("one", "two"):
        assert (tmp_path / home / "api_secrets").stat().st_mode & 0o777 == 0o600
    committed = configparser.ConfigParser(interpolation=None)
    committed.read(REPO_ROOT / "airflow.cfg")
    assert not committed.has_option("api_auth", "jwt_secret")
    assert not committed.has_option("api", "secret_key")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the old secret, deliberately
def test_a_jwt_signed_with_the_once_committed_secret_is_refused(instance):
    token = httpx.post(f"{instance.url}/auth/token", json={"username": instance.username,
                                                           "password": instance.password}, timeout=30)
    assert token.status_code == 201, token.text
    issued = token.json()["access_token"]
    claims = jwt.decode(issued, options={"verify_signature": False})
    algorithm = jwt.get_unverified_header(issued)["alg"]
    secrets_file = (instance.state_dir / "api_secrets").read_text()
    instance_secret = dict(line.split("=", 1) for line in secrets_file.splitlines())["AIRFLOW__API_AUTH__JWT_SECRET"]

    # Airflow's REST API answers a badly signed token with 403 "Invalid JWT token", the PZ Server with 401.
    for path, refused in (("/api/v2/dags", 403), ("/pzserver/api/users/me/", 401)):
        for secret, expected in ((instance_secret, 200), (OLD_COMMITTED_JWT_SECRET, refused)):
            headers = {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm=algorithm)}"}
            response = httpx.get(f"{instance.url}{path}", headers=headers, timeout=30)
            assert response.status_code == expected, (path, secret == instance_secret, response.text)


def test_up_restarts_a_killed_scheduler_and_stops_what_it_left_running(instance):
    before = service_pids(instance)
    os.kill(before["scheduler"], signal.SIGKILL)
    orphans = session_processes(before["scheduler"])
    assert orphans, "the scheduler's executor workers outlive it"

    restarted = instance.script("up.sh")

    assert restarted.returncode == 0, f"{restarted.stdout}\n{restarted.stderr}"
    after = service_pids(instance)
    assert after["scheduler"] != before["scheduler"] and alive(after["scheduler"])
    assert [after[service] for service in SERVICES[:3]] == [before[service] for service in SERVICES[:3]]
    assert not any(alive(pid) for pid in orphans)
    assert "stopping its orphaned processes" in restarted.stdout, restarted.stdout


def test_up_restarts_a_killed_api_server_and_keeps_the_others(instance):
    before = service_pids(instance)
    os.kill(before["api-server"], signal.SIGKILL)

    restarted = instance.script("up.sh")

    assert restarted.returncode == 0, f"{restarted.stdout}\n{restarted.stderr}"
    after = service_pids(instance)
    assert after["api-server"] != before["api-server"] and alive(after["api-server"])
    assert [after[service] for service in SERVICES[1:]] == [before[service] for service in SERVICES[1:]]
    assert httpx.get(f"{instance.url}/api/v2/monitor/health", timeout=30).status_code == 200


def test_a_pid_file_naming_another_process_is_not_taken_for_a_service(instance):
    scheduler = instance.service_pid("scheduler")
    os.kill(scheduler, signal.SIGTERM)
    deadline = time.monotonic() + 120
    while session_processes(scheduler) and time.monotonic() < deadline:
        time.sleep(0.5)
    # An unrelated session leader got the dead scheduler's pid file (as a reused pid would).
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        (instance.state_dir / "run" / "scheduler.pid").write_text(f"{stranger.pid}\n")

        restarted = instance.script("up.sh")

        assert restarted.returncode == 0, f"{restarted.stdout}\n{restarted.stderr}"
        assert alive(stranger.pid)
        assert instance.service_pid("scheduler") not in (stranger.pid, scheduler)
        assert alive(instance.service_pid("scheduler"))
    finally:
        stranger.kill()
        stranger.wait()


def test_down_stops_the_scheduler_first_and_the_api_server_last(instance):
    pids = service_pids(instance)
    gone_at: dict[str, float] = {}

    def watch() -> None:
        deadline = time.monotonic() + 300
        while len(gone_at) < len(pids) and time.monotonic() < deadline:
            for service, pid in pids.items():
                if service not in gone_at and not alive(pid):
                    gone_at[service] = time.monotonic()
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stopped = instance.script("down.sh", timeout_s=240)
    watcher.join(timeout=30)

    assert stopped.returncode == 0, f"{stopped.stdout}\n{stopped.stderr}"
    assert sorted(gone_at, key=gone_at.get) == ["scheduler", "triggerer", "dag-processor", "api-server"]
    assert not any(session_processes(pid) for pid in pids.values())
