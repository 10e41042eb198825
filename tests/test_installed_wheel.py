"""pzlib installed from its wheel, outside the checkout: ``pz run`` and a Great Expectations check work from there.

The wheel is built from what the docker image copies (pyproject.toml, README.md, pzlib/, include/) and installed
with ``--no-deps`` into a fresh virtual environment in a temporary folder. That environment sees the project's
installed dependencies through a ``.pth`` line naming this interpreter's site-packages — a folder named in a
``.pth`` file is put on ``sys.path`` without its own ``.pth`` files being run, so the checkout's editable install
(a ``.pth`` that installs a finder mapping ``pzlib`` to the checkout) is not picked up. Everything runs from a
temporary working folder with a fresh HOME, so nothing can come from the checkout: the data files (GX suites,
flag translations, the sbatch template) must come from the wheel, and state goes to the user's data folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "README.md", "pzlib", "include")
"""What docker/Dockerfile copies before installing pzlib."""


def _run(command: list, **options) -> subprocess.CompletedProcess:
    completed = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=900,
                               **options)
    assert completed.returncode == 0, f"{' '.join(map(str, command))}:\n{completed.stdout}\n{completed.stderr}"
    return completed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built (through its sdist, as a user's ``uv build`` does) from a copy of the build inputs."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        if (CHECKOUT / name).is_dir():
            shutil.copytree(CHECKOUT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(CHECKOUT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    _run([Path(sys.executable).parent / "uv", "build", "--out-dir", dist, source])
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> dict:
    """A fresh venv with the wheel installed: its python, its ``pz``, and the environment to run them in."""
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    site_packages = Path(_run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
                         .stdout.strip())
    (site_packages / "project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([Path(sys.executable).parent / "uv", "pip", "install", "--python", venv / "bin" / "python", "--no-deps",
          wheel])
    home = root / "home"
    home.mkdir()
    workdir = root / "work"
    workdir.mkdir()
    # No PYTHONPATH, no PZ_* settings, a HOME of its own: only the installed wheel and its defaults.
    environment = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    return {"venv": venv, "site_packages": site_packages, "home": home, "cwd": workdir, "env": environment}


def test_the_wheel_holds_every_package_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {path.parent.relative_to(CHECKOUT).as_posix() for path in (CHECKOUT / "pzlib").rglob("__init__.py")}
    missing = {package for package in packages if f"{package}/__init__.py" not in names}
    assert not missing, f"add {sorted(missing)} (as dotted names) to [tool.setuptools] packages in pyproject.toml"
    data_files = {path.relative_to(CHECKOUT / "include").as_posix() for path in (CHECKOUT / "include").rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts}
    assert {f"pzlib/_include/{name}" for name in data_files} <= names


def test_installed_pzlib_finds_its_data_files_and_state_outside_the_checkout(installed):
    code = """
import json, sys
import pzlib
from pzlib.config import Settings
from pzlib.cluster.slurm import TEMPLATE
from pzlib.crossmatch.config import DEFAULT_FLAG_TRANSLATION_FILE
from pzlib.resources import source_checkout
from pzlib.validate.expectations import SUITES_DIR, available_suites
print(json.dumps({
    "pzlib": pzlib.__file__, "checkout": str(source_checkout()), "state_dir": str(Settings().state_dir),
    "suites": available_suites(), "suites_dir": str(SUITES_DIR), "template": str(TEMPLATE),
    "template_is_file": TEMPLATE.is_file(), "flags": str(DEFAULT_FLAG_TRANSLATION_FILE),
    "flags_is_file": DEFAULT_FLAG_TRANSLATION_FILE.is_file(),
    "editable_finders": [repr(finder) for finder in sys.meta_path if "editable" in repr(finder).lower()],
}))
"""
    found = json.loads(_run([installed["venv"] / "bin" / "python", "-c", code], cwd=installed["cwd"],
                            env=installed["env"]).stdout)
    site_packages = installed["site_packages"]
    assert Path(found["pzlib"]).is_relative_to(site_packages), found["pzlib"]
    assert found["editable_finders"] == [], "the checkout's editable install leaked into the new venv"
    assert found["checkout"] == "None"
    assert Path(found["state_dir"]) == installed["home"] / ".local" / "share" / "pz-platform"
    assert set(found["suites"]) >= {"photoz_table", "stage1_partition", "training_set", "specz_catalog"}
    for name in ("suites_dir", "template", "flags"):
        assert Path(found[name]).is_relative_to(site_packages / "pzlib" / "_include"), found[name]
    assert found["template_is_file"] and found["flags_is_file"]


def test_pz_run_and_a_great_expectations_check_from_the_installed_wheel(installed, dc2_paths, dc2_300):
    output, run_folder = installed["cwd"] / "photoz.parquet", installed["cwd"] / "run"
    result = _run([installed["venv"] / "bin" / "pz", "run", "--train", dc2_paths[0], "--input", dc2_300,
                   "--estimator", "bpz", "--output", output, "--workdir", run_folder, "--partition-rows", 150,
                   "--workers", 1], cwd=installed["cwd"], env=installed["env"])
    assert result.stdout.strip().splitlines()[-1].startswith("run: 300 rows")
    assert pq.read_metadata(output).num_rows == 300
    # BPZ's template data went to the installed pzlib's state folder, under the new HOME.
    assert (installed["home"] / ".local" / "share" / "pz-platform" / "cache").is_dir()

    check = ("import sys; from pzlib.validate.expectations import check_file; "
             "report = check_file(sys.argv[1], 'photoz_table', {'expected_rows': 150}); "
             "print(report.suite, report.success, len(report.failures))")
    partition = run_folder / "bpz" / "partitions" / "part-00000.parquet"
    checked = _run([installed["venv"] / "bin" / "python", "-c", check, partition], cwd=installed["cwd"],
                   env=installed["env"])
    assert checked.stdout.split() == ["photoz_table", "True", "0"]

    truncated = installed["cwd"] / "truncated.parquet"
    pq.write_table(pq.read_table(partition).slice(0, 149), truncated)
    failed = subprocess.run([installed["venv"] / "bin" / "python", "-c", check, truncated], capture_output=True,
                            text=True, cwd=installed["cwd"], env=installed["env"])
    assert failed.returncode != 0
    assert "photoz_table validation of" in failed.stderr and "truncated.parquet" in failed.stderr
    assert "expect_table_row_count_to_equal" in failed.stderr
