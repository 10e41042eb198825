"""Object storage on the local filesystem: a key is a file path below a root directory.

Writes go to a hidden temporary sibling (``.<name>.<uuid>.partial``), are flushed to disk and renamed over
the final name, so a reader never sees a partial file and a crash leaves only a temporary file that listings
ignore. Deleting an object also removes the directories it leaves empty, so directories exist only where
objects do, as prefixes on S3. Unlike S3, a key cannot be both an object and a prefix of other keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from pzlib.storage.base import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    Source,
    Storage,
    bounded_reader,
    check_key,
    check_prefix,
    copy_to_file_atomically,
    is_partial_name,
    opened_source,
    resolve_range,
)


class LocalStorage(Storage):
    """Objects kept as files below ``root``.

    Parameters
    ----------
    root : str or os.PathLike
        Directory holding the objects; created on the first ``put``.

    Examples
    --------
    >>> import tempfile
    >>> storage = LocalStorage(tempfile.mkdtemp())
    >>> storage.put("a/b.txt", b"hello").size
    5
    >>> storage.get("a/b.txt", start=1, end=3)
    b'el'
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()
        """Directory holding the objects."""
        self.url = self.root.as_uri()

    def put(self, key: str, source: Source) -> ObjectInfo:
        final_path = self._path(key)
        try:
            with opened_source(source) as reader:
                size, sha256 = copy_to_file_atomically(reader, final_path)
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as error:
            raise InvalidKey(
                f"object key {key!r} clashes with an object or directory already in {self.url}: on local "
                "storage a key cannot also be the prefix of other keys"
            ) from error
        return ObjectInfo(key=key, size=size, sha256=sha256)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        path = self._existing_path(key)
        file = open(path, "rb")
        try:
            start, end = resolve_range(key, os.fstat(file.fileno()).st_size, start, end)
            file.seek(start)
        except BaseException:
            file.close()
            raise
        return bounded_reader(file, end - start)

    def size(self, key: str) -> int:
        return self._existing_path(key).stat().st_size

    def list_objects(self, prefix: str = "") -> list[ObjectInfo]:
        prefix = check_prefix(prefix)
        directory = self.root / prefix if prefix else self.root
        if not directory.is_dir():
            return []
        found = []
        for parent, _, file_names in os.walk(directory):
            for file_name in file_names:
                if is_partial_name(file_name):
                    continue
                path = Path(parent, file_name)
                found.append(ObjectInfo(key=path.relative_to(self.root).as_posix(), size=path.stat().st_size))
        return sorted(found, key=lambda stored: stored.key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            raise InvalidKey(f"{key!r} is a directory of objects in {self.url}; use delete_tree")
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != self.root:
            try:
                # Only an empty directory goes; another request may be writing into it or removing it too.
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _existing_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no object {key!r} in {self.url}")
        return path
