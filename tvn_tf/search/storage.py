"""The study database: opening an Optuna storage, refusing what is no study, heartbeats.

    storage = open_storage("sqlite:///runs/search/search.db")
    storage = open_storage(url, heartbeat_interval=60, grace_period=180, max_retry=3)

A URL is shown without its password (`redact`) in every message. A SQLite
file that exists but is no study database (emptied, another program's) is
refused before Optuna would write its tables into it (`check_sqlite_file`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
import warnings
from collections.abc import Iterator
from typing import Any

import optuna
import sqlalchemy
from optuna.storages._rdb import models  # noqa: PLC2701  (no public heartbeat reader)

from tvn_tf.search import records

_SQLITE = "sqlite:///"


def storage_url(storage: str, model_dir: str) -> str:
    """`--storage`, or the model dir's SQLite study database when it is empty."""
    if storage:
        return storage
    return _SQLITE + os.path.abspath(os.path.join(model_dir, records.STUDY_DB))


@contextlib.contextmanager
def quiet_optuna(level: int | None = None) -> Iterator[None]:
    """Optuna's log at WARNING (or `level`) and without its experimental-feature warnings."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING if level is None else level)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(previous)


def redact(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        auth, host = rest.rsplit("@", 1)
        if ":" in auth:
            return f"{scheme}://{auth.split(':', 1)[0]}:***@{host}"
    return url


def _heartbeat_kwargs(
    heartbeat_interval: int | None, grace_period: int | None, max_retry: int
) -> dict[str, Any]:
    if heartbeat_interval is None:
        return {}
    return dict(
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=max_retry
        ),
    )


def open_storage(
    url: str,
    flag: str = "--storage",
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int = 3,
) -> optuna.storages.RDBStorage:
    """An Optuna `RDBStorage`; with `heartbeat_interval`, heartbeats and retries of dead workers.

    `postgresql://` URLs use psycopg 3. A trial silent for `grace_period`
    seconds is failed by the next worker that looks, and its candidate queued
    again (at most `max_retry` times).

    Raises:
      ValueError: one line naming `flag`, when the URL is malformed, the
        database cannot be reached, or a SQLite file is not a study database
        (`check_sqlite_file`).
    """
    with quiet_optuna():  # The retry callback is experimental: no warning for it.
        kwargs = _heartbeat_kwargs(heartbeat_interval, grace_period, max_retry)
    with _sqlite_folder_locked(url):
        check_sqlite_file(url, flag)
        return _open(url, flag, kwargs)


@contextlib.contextmanager
def _sqlite_folder_locked(url: str) -> Iterator[None]:
    """Holds an exclusive lock on a SQLite study database's folder (where it exists).

    Workers started together on a new SQLite file would otherwise see it empty or
    half made (one creates it, its tables one by one) and refuse it, or fail on
    a table another just created.
    """
    path = sqlite_path(url)
    folder = os.path.dirname(os.path.abspath(path)) if path else None
    try:
        fd = os.open(folder, os.O_RDONLY) if folder and os.path.isdir(folder) else None
    except OSError:  # An unreadable folder: opening the database says so in one line.
        fd = None
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # Releases the lock.


# Workers started together on a new database server each create Optuna's tables and
# stamp its schema version, in no one transaction: all but one may fail on what
# another just made. Opening again then finds it made.
_CREATE_ATTEMPTS = 5
_RACE_MARKS = ("already exists", "unique constraint", "duplicate key")


def _open(url: str, flag: str, kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    """`RDBStorage(url, **kwargs)`, opened again when it lost the race to create the tables."""
    shown = redact(url)  # As given.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("postgresql"):
        engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise ValueError(
            f"{flag}={shown}: expected sqlite:///FILE, postgresql://USER:PASSWORD@HOST:5432/tvn "
            "or mysql://..."
        )
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with quiet_optuna():
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except Exception as e:  # noqa: BLE001  (SQLAlchemy's and the drivers' errors vary)
            reason = " ".join(str(getattr(e, "orig", None) or e).split())[:300]
            if attempt + 1 < _CREATE_ATTEMPTS and _lost_creation_race(e):
                time.sleep(0.1 * (attempt + 1))
                continue
            raise ValueError(
                f"{flag}={shown}: cannot open the study database ({reason})."
            ) from None
    raise AssertionError("unreachable")


def _lost_creation_race(error: Exception) -> bool:
    """Whether `error` is a table or schema row that another worker created first."""
    if not isinstance(
        error,
        (
            sqlalchemy.exc.OperationalError,
            sqlalchemy.exc.IntegrityError,
            sqlalchemy.exc.ProgrammingError,
        ),
    ):
        return False
    text = str(getattr(error, "orig", None) or error).lower()
    return any(mark in text for mark in _RACE_MARKS)


def sqlite_path(url: str) -> str | None:
    """The file of a `sqlite:///FILE` URL (None: another database, or in memory)."""
    if not url.startswith(_SQLITE):
        return None
    path = url[len(_SQLITE) :].split("?", 1)[0]
    return path if path and path != ":memory:" else None


def _sqlite_tables(path: str, flag: str, what: str) -> set[str]:
    """The tables of a SQLite file (its `trials` table read through once)."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "trials" in tables:
                connection.execute("SELECT count(*) FROM trials").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as e:
        raise ValueError(
            f"{flag}: {path} is an unreadable SQLite database ({e}); {what}."
        ) from None
    return tables


def check_sqlite_file(url: str, flag: str = "--storage") -> None:
    """Refuses a SQLite file that exists but holds no readable Optuna study database.

    Optuna would create its tables in an emptied (0-byte) file, or in another
    program's database, and a search would then start a new study over the
    records of the old one. A missing file is fine: a new study database.

    Raises:
      ValueError: naming the file and what it holds instead.
    """
    path = sqlite_path(url)
    if path is None or not os.path.lexists(path):
        return
    what = "restore it from a copy, or move it away to start a new study"
    if os.path.isdir(path):
        raise ValueError(f"{flag}: {path} is a folder, not a study database (SQLite file).")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise ValueError(f"{flag}: cannot read {path} ({e.strerror}).") from None
    if not head:
        raise ValueError(f"{flag}: {path} is empty (0 bytes), not a study database; {what}.")
    if head != b"SQLite format 3\x00":
        raise ValueError(f"{flag}: {path} is not a SQLite database (the study's); {what}.")
    tables = _sqlite_tables(path, flag, what)
    if tables and not {"studies", "trials"} <= tables:
        raise ValueError(
            f"{flag}: {path} is a SQLite database without Optuna's study tables "
            f"(it has {', '.join(sorted(tables)[:3])}); {what}."
        )


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """The names of the studies the storage holds."""
    with quiet_optuna():
        return [s.study_name for s in storage.get_all_studies()]


def heartbeat_ages(study: optuna.Study, trials) -> dict[int, float]:
    """Seconds since each running trial's last heartbeat, by trial number (database clock)."""
    storage = study._storage  # noqa: SLF001
    storage = getattr(storage, "_backend", storage)  # The RDBStorage under Optuna's cache.
    engine = getattr(storage, "engine", None)
    if engine is None:
        return {}
    ids = {t._trial_id: t.number for t in trials}  # noqa: SLF001
    model = models.TrialHeartbeatModel
    with engine.connect() as connection:
        now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        rows = connection.execute(
            sqlalchemy.select(model.trial_id, model.heartbeat).where(model.trial_id.in_(ids))
        ).all()
    now = now.replace(tzinfo=None)
    return {
        ids[trial_id]: (now - beat.replace(tzinfo=None)).total_seconds() for trial_id, beat in rows
    }
