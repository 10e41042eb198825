"""Platform settings from the environment: where state lives, the PZ Server upload limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from pzlib.config import Settings, load_settings

CHECKOUT = Path(__file__).resolve().parents[2]


def test_state_lives_in_the_checkouts_var_unless_the_environment_says_otherwise(tmp_path):
    # An installed pzlib's default (the user's data folder) is checked by tests/test_installed_wheel.py.
    assert Settings().state_dir == load_settings({}).state_dir == CHECKOUT / "var"
    assert load_settings({"PZ_STATE_DIR": str(tmp_path / "state")}).state_dir == tmp_path / "state"


def test_the_upload_limit_comes_from_the_environment():
    assert load_settings({}).upload_limit_bytes == Settings().upload_limit_bytes == 200 * 1024 * 1024
    assert load_settings({"PZ_UPLOAD_LIMIT_BYTES": "1048576"}).upload_limit_bytes == 1024 * 1024


@pytest.mark.parametrize("value", ["ten megabytes", "0", "-5"])
def test_a_bad_upload_limit_is_refused(value):
    with pytest.raises(ValueError, match="upload_limit_bytes|PZ_UPLOAD_LIMIT_BYTES"):
        load_settings({"PZ_UPLOAD_LIMIT_BYTES": value})
