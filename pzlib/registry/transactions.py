"""Write transactions of the registry: each sees one state of the database, and a race it loses becomes a
domain error.

Two requests may change one product at once (an upload and a DELETE, a PATCH and a DELETE, two uploads of a
main file). Every change runs in ``writing``: on SQLite the transaction starts with ``BEGIN IMMEDIATE``, so its
reads and writes see no other writer (pysqlite would otherwise read outside any transaction and start one at
the first write); on Postgres the product a change reads is locked (``queries.changeable_product``), so a
concurrent delete waits or is waited for. What the database still refuses — a unique index or a foreign key
that a concurrent request made true first — is translated here, in one place: a violated foreign key means
what the change refers to was deleted meanwhile (``NotFound``, 404), a violated unique constraint means
another request made the same thing first (``AlreadyExists``, 409).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from pzlib.registry.errors import AlreadyExists, NotFound, RegistryError

# SQLSTATEs of Postgres and extended result codes of SQLite, by what they mean for the caller.
_FOREIGN_KEY_VIOLATIONS = frozenset({"23503", "SQLITE_CONSTRAINT_FOREIGNKEY"})
_UNIQUE_VIOLATIONS = frozenset({"23505", "SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


@contextmanager
def writing(engine: Engine, subject: str) -> Iterator[Connection]:
    """A connection in a write transaction, committed when the block ends without an error.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Registry database.
    subject : str
        What the change is about and a concurrent request may delete, for the message of a lost race, e.g.
        ``"product 12"``.

    Raises
    ------
    NotFound
        Something the change refers to was deleted by a concurrent transaction.
    AlreadyExists
        A concurrent transaction made a record this change would duplicate.
    """
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection
    except IntegrityError as error:
        lost = _lost_race(error, subject)
        if lost is None:
            raise
        raise lost from error


def _lost_race(error: IntegrityError, subject: str) -> RegistryError | None:
    """The domain error of a race lost to a concurrent transaction; None for any other integrity error."""
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "sqlite_errorname", None)
    if code in _FOREIGN_KEY_VIOLATIONS:
        return NotFound(f"{subject} was deleted by another request at the same time")
    if code in _UNIQUE_VIOLATIONS:
        return AlreadyExists(
            f"another request changed {subject} at the same time and this change clashes with it; "
            "reload and try again"
        )
    return None
