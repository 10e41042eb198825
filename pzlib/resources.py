"""Where pzlib's own files are: its data files, and the source checkout it runs from, if any.

The data files — Great Expectations suites, CRC flag translations, sbatch templates — live in the repository's
top-level ``include/`` and ship inside the wheel as the package ``pzlib._include`` (pyproject.toml maps the
folder to that name, for a wheel and an editable install alike). They are read through :func:`include_path`,
with :mod:`importlib.resources`, so an installed pzlib finds the same files as a checkout; nothing climbs up
from ``__file__`` to look for them.

Examples
--------
>>> include_path("expectations", "photoz_table.yaml").name
'photoz_table.yaml'
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

INCLUDE_PACKAGE = "pzlib._include"
"""The package name under which ``include/`` is installed."""


def include_path(*parts: str) -> Path:
    """The file or folder ``include/<parts>``, e.g. ``include_path("sbatch", "job_array.sbatch")``.

    pzlib is installed as files, never zipped, so the resource is a real path (a zipped install would fail
    here, loudly, rather than later at a read).
    """
    return Path(files(INCLUDE_PACKAGE).joinpath(*parts))


def source_checkout() -> Path | None:
    """The source tree pzlib is imported from (the folder holding its ``pyproject.toml``: a developer's checkout,
    editable install or not), or None for a pzlib installed from a wheel."""
    root = Path(files("pzlib")).resolve().parent
    return root if (root / "pyproject.toml").is_file() else None
