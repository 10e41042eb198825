"""Clusters as Airflow SSH connections (pzlib.cluster.airflow): the SSH provider's hook connects, directly or
through a jump host (a second real sshd), host keys are checked on every hop, and the connection's extra holds
the cluster's own settings. The connections live in this process's environment (``AIRFLOW_CONN_*``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import paramiko
import pytest
from backend_contract import sleeper_request, wait_for_end
from fixtures.cluster import environment_connection

from pzlib.cluster.airflow import backend_for, check_clusters, cluster
from pzlib.cluster.backend import BackendUnavailable
from pzlib.cluster.resources import resources_for
from pzlib.cluster.ssh import SSHConfigError


@pytest.fixture(scope="module")
def other_host_key(tmp_path_factory) -> str:
    """A host key that neither sshd has."""
    key = tmp_path_factory.mktemp("other_key") / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return " ".join(Path(f"{key}.pub").read_text().split()[:2])


@pytest.fixture
def define(monkeypatch, cluster_connections):
    """define(REST body): one more Airflow connection, in the environment for this test only."""

    def add(connection: dict) -> str:
        monkeypatch.setenv(*environment_connection(connection))
        return connection["connection_id"]

    return add


def test_a_cluster_behind_a_jump_host_runs_arrays_through_it(cluster_connections, jump_host, tmp_path):
    logins_before = jump_host.log_path.read_text().count("Accepted publickey")

    with backend_for("slurm", cluster_connections["jump"]) as backend:
        handle = backend.submit_array(sleeper_request(tmp_path, "jumped", 2))
        states, _ = wait_for_end(backend, [handle])
        # The cluster's SSH connection runs inside a channel of the jump host's.
        assert isinstance(backend.shell.client.get_transport().sock, paramiko.Channel)

    assert all(state.succeeded for state in states.values())
    assert jump_host.log_path.read_text().count("Accepted publickey") == logins_before + 1


def test_a_wrong_host_key_of_the_jump_host_is_refused(define, slurm_cluster, jump_host, other_host_key):
    login = define(jump_host.airflow_connection("pz_bad_login", slurm_cluster, host_key=other_host_key))
    behind = define(slurm_cluster.airflow_connection("pz_behind_bad_login", jump_conn_id=login))

    with backend_for("slurm", behind) as backend, pytest.raises(SSHConfigError) as refusal:
        backend.shell.run("true")

    assert f"jump host {login} ({slurm_cluster.user}@{jump_host.host} port {jump_host.port})" in str(refusal.value)
    assert "host key" in str(refusal.value) and "check the connection's host_key" in str(refusal.value)


def test_a_wrong_host_key_of_the_cluster_behind_the_jump_host_is_refused(define, slurm_cluster, cluster_connections,
                                                                          jump_host, other_host_key):
    logins_before = jump_host.log_path.read_text().count("Accepted publickey")
    behind = define(slurm_cluster.airflow_connection("pz_bad_behind", host_key=other_host_key,
                                                     jump_conn_id=cluster_connections["login"]))

    with backend_for("slurm", behind) as backend, pytest.raises(SSHConfigError) as refusal:
        backend.shell.run("true")

    assert str(refusal.value).startswith(f"SSH to {behind} ({slurm_cluster.user}@{slurm_cluster.host} port "
                                         f"{slurm_cluster.port}) refused: its host key")
    assert jump_host.log_path.read_text().count("Accepted publickey") == logins_before + 1  # the first hop passed


def test_a_host_key_unknown_to_the_connection_is_refused(define, slurm_cluster):
    connection = slurm_cluster.airflow_connection("pz_no_host_key")
    connection["extra"] = json.dumps({"key_file": str(slurm_cluster.key_path)})
    unknown = define(connection)

    with backend_for("slurm", unknown) as backend, pytest.raises(SSHConfigError) as refusal:
        backend.shell.run("true")

    assert "its host key is unknown (set the connection's host_key extra" in str(refusal.value)


def test_a_connection_that_turns_host_key_checking_off_is_refused(define, slurm_cluster):
    connection = slurm_cluster.airflow_connection("pz_unchecked")
    connection["extra"] = json.dumps({"key_file": str(slurm_cluster.key_path), "no_host_key_check": "true"})
    unchecked = define(connection)

    with pytest.raises(SSHConfigError, match=f"connection '{unchecked}' turns host key checking off"):
        cluster(unchecked)


def test_an_unreachable_cluster_is_unavailable_naming_it(define, slurm_cluster):
    closed = define({**slurm_cluster.airflow_connection("pz_closed"), "port": 9})  # discard: nothing listens

    with backend_for("slurm", closed) as backend, pytest.raises(BackendUnavailable) as unavailable:
        backend.shell.run("true")

    assert str(unavailable.value).startswith(f"cannot reach {closed} ({slurm_cluster.user}@{slurm_cluster.host} "
                                             "port 9):")


def test_a_chain_of_jump_hosts_is_refused(define, slurm_cluster, cluster_connections):
    behind = define(slurm_cluster.airflow_connection("pz_twice", jump_conn_id=cluster_connections["jump"]))

    with pytest.raises(SSHConfigError, match="its jump host 'pz_test_jump' has a jump host of its own"):
        cluster(behind)


def test_an_undefined_connection_is_named():
    with pytest.raises(SSHConfigError, match="cluster connection 'pz_nowhere' is not defined"):
        cluster("pz_nowhere")


def test_a_runs_clusters_are_checked_as_params_without_connecting(define, slurm_cluster, cluster_connections):
    http = define({"connection_id": "pz_http", "conn_type": "http", "host": "example.org"})
    down = define({**slurm_cluster.airflow_connection("pz_down"), "port": 9})

    check_clusters([cluster_connections["jump"], down])  # a cluster that is down fails only its own tasks
    with pytest.raises(ValueError, match="^cluster: connection 'pz_http' is of type 'http': a cluster is an Airflow "
                                         "connection of type ssh$"):
        check_clusters([down, http])


def test_the_cluster_settings_come_from_the_connections_extra(define, slurm_cluster):
    apollo = define(slurm_cluster.airflow_connection(
        "pz_apollo", python="/opt/pz/bin/python", pythonpath="", environment={"PZ_STATE_DIR": "/scratch"},
        poll_interval=3,
        resources={"partition": slurm_cluster.second_partition, "account": "lsst", "fzboost": {"mem": "8G"}}))

    found = cluster(apollo)
    backend = found.backend()

    assert (found.python, found.environment, found.poll_interval_s) == ("/opt/pz/bin/python",
                                                                        {"PZ_STATE_DIR": "/scratch"}, 3.0)
    assert backend.pythonpath == ""  # nothing added to the jobs' PYTHONPATH
    fzboost = resources_for({"account": "des"}, "fzboost", backend.resources)
    assert (fzboost.partition, fzboost.account, fzboost.mem) == (slurm_cluster.second_partition, "des", "8G")


@pytest.mark.parametrize(("extra", "problem"), [
    ({"resources": {"mem": "lots"}}, "extra resources: mem: 'lots' is not a memory size"),
    ({"environment": ["A=1"]}, "extra environment: must be an object"),
    ({"poll_interval": 0}, "extra poll_interval: must be a positive number of seconds, got 0"),
    ({"jump_conn_id": "pz_self"}, "extra jump_conn_id: names the connection itself"),
    ({"pythonpath": 1}, "extra pythonpath: must be a string"),
])  # fmt: skip
def test_bad_cluster_settings_are_named(define, slurm_cluster, extra, problem):
    bad = define(slurm_cluster.airflow_connection("pz_self", **extra))

    with pytest.raises(SSHConfigError) as refusal:
        cluster(bad)

    assert str(refusal.value).startswith(f"connection 'pz_self', {problem}")
