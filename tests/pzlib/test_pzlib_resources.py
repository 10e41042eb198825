"""pzlib.resources: the data files of include/ and the checkout are found through the package, from any folder.

tests/test_installed_wheel.py runs the same accessors from an installed wheel, outside the checkout. (Not
test_resources.py: tests/pzlib/cluster/ has one, and test modules here need distinct basenames.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pzlib.resources import include_path, source_checkout

CHECKOUT = Path(__file__).resolve().parents[2]
DATA_FILES = sorted(path.relative_to(CHECKOUT / "include")
                    for path in (CHECKOUT / "include").rglob("*") if path.is_file() and path.suffix != ".py"
                    and "__pycache__" not in path.parts)


def test_the_checkout_ships_data_files():
    assert {path.parts[0] for path in DATA_FILES} == {"crc", "expectations", "sbatch"}


@pytest.mark.parametrize("relative", DATA_FILES, ids=str)
def test_every_data_file_is_reached_through_the_accessor(relative):
    found = include_path(*relative.parts)
    assert found.samefile(CHECKOUT / "include" / relative)


def test_a_checkout_is_where_pzlib_runs_from():
    assert source_checkout() == CHECKOUT


def test_the_accessors_do_not_depend_on_the_working_folder(tmp_path):
    # The editable install maps pzlib._include to include/ by itself: no checkout on sys.path, another folder.
    code = ("from pzlib.resources import include_path, source_checkout; "
            "print(include_path('sbatch', 'job_array.sbatch')); print(source_checkout())")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                               env={"PATH": "/usr/bin:/bin"}, check=True)
    assert completed.stdout.split() == [str(CHECKOUT / "include" / "sbatch" / "job_array.sbatch"), str(CHECKOUT)]
