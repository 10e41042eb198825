"""``pz release set``: registers a release or changes it, with the object catalog the Training Set Maker uses,
checked (a HATS catalog, a valid column map) before anything is stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pzlib.registry import Registry


def pz_release(state_dir, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PZ_STATE_DIR": str(state_dir)}
    environment.pop("PZ_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "pzlib.cli", "release", "set", *args], env=environment,
                          capture_output=True, text=True, timeout=300)


def test_release_set_registers_then_changes_a_release_and_its_object_catalog(tmp_path, crossmatch_sample):
    created = pz_release(tmp_path, "dc2", "--display-name", "DC2 sample", "--public")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["object_catalog"] is None

    changed = pz_release(tmp_path, "dc2", "--object-catalog", str(crossmatch_sample.objects), "--column-map",
                         "dm_gaap", "--no-public", "--group", "desc")
    assert changed.returncode == 0, changed.stderr
    release = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}").update_release("dc2")
    assert (release.display_name, release.is_public, release.access_groups) == ("DC2 sample", False, ("desc",))
    assert (release.object_catalog, release.object_column_map) == (str(crossmatch_sample.objects), "dm_gaap")


def test_release_set_refuses_a_bad_catalog_or_column_map_and_stores_nothing(tmp_path, crossmatch_sample):
    not_hats = pz_release(tmp_path, "dc2", "--object-catalog", str(crossmatch_sample.reference))
    assert not_hats.returncode == 2 and "is not a folder (a HATS catalog is expected)" in not_hats.stderr
    bad_map = pz_release(tmp_path, "dc2", "--object-catalog", str(crossmatch_sample.objects),
                         "--column-map", "sdss_model")
    assert bad_map.returncode == 2 and "sdss_model" in bad_map.stderr
    registry = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    assert registry.list_releases(registry.create_user("root", is_admin=True)) == ()
