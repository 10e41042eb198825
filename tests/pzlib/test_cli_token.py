"""``pz token create``: prints a working PZ Server API token, creating the user (or making it an admin)."""

from __future__ import annotations

import os
import subprocess
import sys

from pzlib.registry import Registry


def pz_token(state_dir, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PZ_STATE_DIR": str(state_dir)}
    environment.pop("PZ_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "pzlib.cli", "token", "create", *args], env=environment,
                          capture_output=True, text=True, timeout=120)


def test_token_create_makes_the_user_and_a_working_token(tmp_path):
    created = pz_token(tmp_path, "alice")
    assert created.returncode == 0, created.stderr
    registry = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    user = registry.authenticate(created.stdout.strip())
    assert user.username == "alice" and not user.is_admin

    promoted = pz_token(tmp_path, "alice", "--admin", "--label", "notebook")
    assert promoted.returncode == 0, promoted.stderr
    assert registry.authenticate(promoted.stdout.strip()).is_admin
    assert registry.authenticate(created.stdout.strip()).username == "alice"  # the first token still works


def test_token_create_refuses_a_bad_user_name(tmp_path):
    refused = pz_token(tmp_path, "../root")
    assert refused.returncode == 2 and "username '../root' is not valid" in refused.stderr
