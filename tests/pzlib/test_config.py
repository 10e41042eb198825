"""Platform settings from the environment: the PZ Server upload limit."""

from __future__ import annotations

import pytest

from pzlib.config import Settings, load_settings


def test_the_upload_limit_comes_from_the_environment():
    assert load_settings({}).upload_limit_bytes == Settings().upload_limit_bytes == 200 * 1024 * 1024
    assert load_settings({"PZ_UPLOAD_LIMIT_BYTES": "1048576"}).upload_limit_bytes == 1024 * 1024


@pytest.mark.parametrize("value", ["ten megabytes", "0", "-5"])
def test_a_bad_upload_limit_is_refused(value):
    with pytest.raises(ValueError, match="upload_limit_bytes|PZ_UPLOAD_LIMIT_BYTES"):
        load_settings({"PZ_UPLOAD_LIMIT_BYTES": value})
