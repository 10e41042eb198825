"""The object-storage interface, its errors, and what every backend shares.

A store maps keys (relative POSIX paths such as ``training_set/12_desi/desi.parquet``) to immutable byte
objects. ``put`` is atomic: readers see the old object or the new one, never a part, and a failed ``put``
leaves nothing behind. ``open`` streams a byte range, for HTTP Range downloads. Directories (a HATS catalog)
are key prefixes: ``put_directory`` and ``get_directory`` copy a tree file by file, each file atomically.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024
"""Bytes moved per read when streaming."""

PARTIAL_SUFFIX = ".partial"
"""Ends the temporary name an object (or a download) has until it is complete."""

_PARTIAL_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.partial$")
_FORBIDDEN_KEY_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\]")

Source = str | os.PathLike | bytes | BinaryIO
"""What ``put`` stores: a local file path, the bytes themselves, or a binary stream read to its end."""


class StorageError(Exception):
    """Base class of object-storage errors."""


class ObjectNotFound(StorageError):
    """No object has this key."""


class InvalidKey(StorageError, ValueError):
    """A key is not a clean relative path."""


class InvalidRange(StorageError, ValueError):
    """A byte range lies outside the object (HTTP 416)."""

    def __init__(self, message: str, size: int):
        super().__init__(message)
        self.size = size
        """Size of the object, for a ``Content-Range: bytes */size`` answer."""


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object."""

    key: str
    size: int
    """Bytes."""
    sha256: str | None = None
    """Hex digest, when the operation read the whole content (``put``, ``download``)."""


def check_key(key: object) -> str:
    """Return ``key`` when it is a clean relative POSIX path, else raise ``InvalidKey``.

    Examples
    --------
    >>> check_key("training_set/12_desi/desi.parquet")
    'training_set/12_desi/desi.parquet'
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"object key {key!r} is empty; give a relative path such as 'product/file.csv'")
    segments = key.split("/")
    if (
        len(key.encode("utf-8")) > 1024
        or _FORBIDDEN_KEY_CHARACTERS.search(key)
        or any(segment in ("", ".", "..") for segment in segments)
        or _PARTIAL_NAME.match(segments[-1])
    ):
        raise InvalidKey(
            f"object key {key!r} is not a clean relative path: no leading, trailing or doubled '/', "
            "no '.' or '..' segments, no backslashes or control characters, at most 1024 bytes"
        )
    return key


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` without a trailing ``/``; ``""`` stands for the whole store."""
    if prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise InvalidKey(f"key prefix {prefix!r} must be text")
    return check_key(prefix.removesuffix("/"))


def join_key(prefix: str, relative_key: str) -> str:
    """``prefix/relative_key``, or ``relative_key`` alone under the empty prefix."""
    return f"{prefix}/{relative_key}" if prefix else relative_key


def resolve_range(key: str, size: int, start: int, end: int | None) -> tuple[int, int]:
    """Check a byte range of an object of ``size`` bytes and return it as ``(start, end)``, end exclusive.

    ``start`` must lie inside the object (0 is always allowed, so an empty object reads whole); ``end``
    defaults to ``size`` and is clamped to it, as HTTP clamps a last-byte position.

    Raises
    ------
    InvalidRange
        When ``start`` is negative or past the end, or ``end`` is before ``start``.
    """
    end = size if end is None else min(end, size)
    if start < 0 or (start >= size and start != 0) or end < start:
        raise InvalidRange(
            f"byte range [{start}, {end}) is outside object {key!r} of {size} bytes; start must be in "
            f"[0, {max(size - 1, 0)}] and end not before start",
            size,
        )
    return start, end


class _BoundedReader(io.RawIOBase):
    """Reads at most ``length`` bytes from ``stream`` (a file or an HTTP body) and closes it when closed."""

    def __init__(self, stream: BinaryIO, length: int):
        self._stream = stream
        self._remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:
        if self._remaining <= 0:
            return 0
        data = self._stream.read(min(len(buffer), self._remaining))
        buffer[: len(data)] = data
        self._remaining -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


def bounded_reader(stream: BinaryIO, length: int) -> BinaryIO:
    """A buffered binary reader of the next ``length`` bytes of ``stream``; closing it closes ``stream``."""
    return io.BufferedReader(_BoundedReader(stream, length), buffer_size=CHUNK_SIZE)


@contextmanager
def opened_source(source: Source) -> Iterator[BinaryIO]:
    """A binary reader of ``source``; files this opens are closed again, streams given are left open."""
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(bytes(source))
    elif isinstance(source, str | os.PathLike):
        with open(source, "rb") as file:
            yield file
    else:
        yield source


def partial_path(final_path: Path) -> Path:
    """Unique temporary sibling of ``final_path``, renamed over it once complete."""
    return final_path.with_name(f".{final_path.name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}")


def is_partial_name(file_name: str) -> bool:
    """True for the temporary name of an incomplete object or download."""
    return bool(_PARTIAL_NAME.match(file_name))


def copy_to_file_atomically(reader: BinaryIO, final_path: Path) -> tuple[int, str]:
    """Stream ``reader`` into ``final_path`` through a temporary sibling; return its size and SHA-256.

    The file appears complete under its name or not at all; a failure removes the temporary file.
    """
    final_path.parent.mkdir(parents=True, exist_ok=True)
    temporary_path = partial_path(final_path)
    digest = hashlib.sha256()
    size = 0
    try:
        with open(temporary_path, "xb") as writer:
            while chunk := reader.read(CHUNK_SIZE):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(temporary_path, final_path)
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


class Storage(ABC):
    """An object store: the same interface over the local filesystem and S3."""

    url: str
    """Where the store is, as given in its configuration."""

    @abstractmethod
    def put(self, key: str, source: Source) -> ObjectInfo:
        """Store ``source`` under ``key`` atomically, replacing any object there.

        Parameters
        ----------
        key : str
            Relative POSIX path (see ``check_key``).
        source : str, os.PathLike, bytes or binary stream
            A local file, the content itself, or a stream read to its end (not closed).

        Returns
        -------
        ObjectInfo
            Key, size and SHA-256 of what was stored.

        Raises
        ------
        InvalidKey
            Malformed key.
        """

    @abstractmethod
    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """Open bytes ``[start, end)`` of an object for streaming; close the reader when done.

        Raises
        ------
        ObjectNotFound
            No such object.
        InvalidRange
            The range lies outside the object (see ``resolve_range``).

        Examples
        --------
        >>> with storage.open("a/b.csv", start=100, end=200) as reader:  # doctest: +SKIP
        ...     chunk = reader.read()
        """

    @abstractmethod
    def size(self, key: str) -> int:
        """Bytes of an object.

        Raises
        ------
        ObjectNotFound
            No such object.
        """

    @abstractmethod
    def list_objects(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects under ``prefix`` taken as a directory (``"a"`` lists ``a/…``, not ``ab``), by key."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; removing a missing one is not an error."""

    def exists(self, key: str) -> bool:
        """True when an object has this key."""
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of an object, in memory; ``open`` streams large ones."""
        with self.open(key, start, end) as reader:
            return reader.read()

    def download(self, key: str, destination: str | os.PathLike) -> ObjectInfo:
        """Copy an object to a local file, atomically, and return its size and SHA-256.

        Raises
        ------
        ObjectNotFound
            No such object.
        """
        with self.open(key) as reader:
            size, sha256 = copy_to_file_atomically(reader, Path(destination))
        return ObjectInfo(key=key, size=size, sha256=sha256)

    def delete_tree(self, prefix: str) -> int:
        """Remove every object under ``prefix`` (a directory such as a HATS catalog); return how many."""
        removed = self.list_objects(check_prefix(prefix))
        for stored in removed:
            self.delete(stored.key)
        return len(removed)

    def put_directory(self, directory: str | os.PathLike, prefix: str) -> list[ObjectInfo]:
        """Store every file below a local directory under ``prefix``, keeping relative paths.

        Returns
        -------
        list of ObjectInfo
            The stored objects, sorted by key.

        Raises
        ------
        StorageError
            ``directory`` is not a directory.
        """
        prefix = check_prefix(prefix)
        root = Path(directory)
        if not root.is_dir():
            raise StorageError(f"{root} is not a directory; put_directory copies a directory tree")
        file_paths = sorted(path for path in root.rglob("*") if path.is_file())
        return [self.put(join_key(prefix, path.relative_to(root).as_posix()), path) for path in file_paths]

    def get_directory(self, prefix: str, directory: str | os.PathLike) -> list[ObjectInfo]:
        """Copy every object under ``prefix`` into a local directory, keeping relative paths.

        Raises
        ------
        ObjectNotFound
            Nothing is stored under ``prefix``.
        """
        prefix = check_prefix(prefix)
        stored = self.list_objects(prefix)
        if not stored:
            raise ObjectNotFound(f"no object is stored under {prefix!r} in {self.url}")
        root = Path(directory)
        relative_start = len(prefix) + 1 if prefix else 0
        return [self.download(item.key, root / item.key[relative_start:]) for item in stored]
