"""Platform settings: where state lives, which database, storage and job backend to use.

The embedded default needs nothing installed: SQLite under ``state_dir`` (``var/`` of the checkout pzlib runs
from, or the user's data folder for an installed pzlib), the local filesystem and local processes. Every
setting can be overridden by a ``PZ_*`` environment variable or a TOML file named by ``PZ_CONFIG``; production
deployments point them at Postgres, S3 and Slurm.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import platformdirs

from pzlib.resources import source_checkout

BACKENDS = ("local", "slurm")
"""Where stage III can run: processes of this machine, or job arrays on a Slurm cluster over SSH."""


def check_backend(name: object, what: str = "backend") -> str:
    """``name`` if it is one of :data:`BACKENDS`; else ValueError naming ``what``."""
    if name not in BACKENDS:
        raise ValueError(f"{what}: must be {' or '.join(map(repr, BACKENDS))}, got {name!r}")
    return name


def default_state_dir() -> Path:
    """``var/`` of the checkout pzlib runs from; for a pzlib installed from a wheel, the user's data folder."""
    checkout = source_checkout()
    return checkout / "var" if checkout else platformdirs.user_data_path("pz-platform")


@dataclass(frozen=True)
class Settings:
    """Runtime settings of the platform."""

    state_dir: Path = field(default_factory=default_state_dir)
    """Folder for runtime state: databases, caches, run outputs of the embedded default (``PZ_STATE_DIR``)."""
    database_url: str = ""
    """SQLAlchemy URL of the registry database; empty means SQLite under ``state_dir``."""
    storage_url: str = ""
    """Where products are stored (``file:///...`` or ``s3://bucket/prefix``); empty means ``state_dir``."""
    backend: str = "local"
    """Where stage III of a ``pz_compute`` run goes when its ``backend`` param is not given (the scheduled yearly
    reprocessing among them): ``local`` or ``slurm`` (``PZ_BACKEND``). ``pz run`` always runs on this machine."""
    upload_limit_bytes: int = 200 * 1024 * 1024
    """Largest file the PZ Server accepts in one upload; products are meant to be lightweight."""
    unzipped_limit_bytes: int = 400 * 1024 * 1024
    """Most bytes a zipped HATS catalog may unpack to, checked before and while unpacking (HTTP 413 beyond);
    twice the upload limit: its Parquet files are compressed already, its point map and metadata compress well."""
    body_limit_bytes: int = 1024 * 1024
    """Largest JSON or form body the PZ Server reads (HTTP 413 beyond); file uploads have their own limit."""
    description_limit_chars: int = 10_000
    """Longest product description the PZ Server stores (HTTP 400 beyond); every listing serves it."""
    search_terms_limit: int = 50
    """Most filter values and search words in one product listing query, all filters together (HTTP 400 beyond)."""
    s3_endpoint_url: str = ""
    """Endpoint of the S3-compatible store that ``s3://`` inputs of ``pz`` are read from (``PZ_S3_ENDPOINT_URL``);
    empty: AWS itself. ``pz`` never takes an endpoint or keys from a run's params."""
    s3_region: str = ""
    """Region of that store (``PZ_S3_REGION``); empty: boto3's own lookup."""
    s3_access_key_id: str = field(default="", repr=False)
    """Access key for ``s3://`` inputs (``PZ_S3_ACCESS_KEY_ID``); empty: boto3's own lookup (environment, config
    files, instance role)."""
    s3_secret_access_key: str = field(default="", repr=False)
    """Secret key, with ``s3_access_key_id`` (``PZ_S3_SECRET_ACCESS_KEY``)."""

    def __post_init__(self):
        check_backend(self.backend, "PZ_BACKEND")
        for name in _POSITIVE_INTEGERS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def cache_dir(self) -> Path:
        """Writable caches (e.g. BPZ's template data, which RAIL writes AB files into)."""
        return self.state_dir / "cache"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'registry.sqlite'}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or (self.state_dir / "storage").as_uri()


_POSITIVE_INTEGERS = tuple(field.name for field in fields(Settings) if field.type == "int")
"""Settings that are limits: positive integers, given as digits in the environment."""


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Settings from ``PZ_CONFIG`` (TOML) overridden by ``PZ_<FIELD>`` environment variables."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    config_path = environ.get("PZ_CONFIG")
    if config_path:
        with open(config_path, "rb") as config_file:
            values.update(tomllib.load(config_file))
    for setting in fields(Settings):
        env_value = environ.get(f"PZ_{setting.name.upper()}")
        if env_value is not None:
            values[setting.name] = env_value
    unknown = set(values) - {setting.name for setting in fields(Settings)}
    if unknown:
        raise ValueError(f"unknown settings in {config_path}: {', '.join(sorted(unknown))}")
    if "state_dir" in values:
        values["state_dir"] = Path(str(values["state_dir"])).expanduser().resolve()
    for name in _POSITIVE_INTEGERS:
        if isinstance(values.get(name), str):
            try:
                values[name] = int(values[name])
            except ValueError as error:
                raise ValueError(f"PZ_{name.upper()} must be a whole number, got {values[name]!r}") from error
    return Settings(**values)

