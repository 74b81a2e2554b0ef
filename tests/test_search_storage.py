"""The study database: URLs, SQLite files that are no study, Optuna's storage and heartbeats."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3

import optuna
import pytest

from tvn_tf.search import storage as storage_lib


def test_urls_the_default_database_and_passwords():
    assert storage_lib.storage_url("postgresql://u:p@h/db", "runs/x") == "postgresql://u:p@h/db"
    default = storage_lib.storage_url("", "runs/x")
    assert default == "sqlite:///" + os.path.abspath("runs/x/search.db")
    assert storage_lib.sqlite_path(default) == os.path.abspath("runs/x/search.db")
    assert storage_lib.sqlite_path("sqlite:///a.db?timeout=5") == "a.db"
    assert storage_lib.sqlite_path("sqlite:///:memory:") is None
    assert storage_lib.sqlite_path("postgresql://h/db") is None
    assert storage_lib.redact("postgresql://tvn:secret@host:5432/tvn") == (
        "postgresql://tvn:***@host:5432/tvn"
    )
    assert storage_lib.redact("postgresql://tvn@host/tvn") == "postgresql://tvn@host/tvn"
    assert storage_lib.redact("sqlite:///a.db") == "sqlite:///a.db"


def test_sqlite_files_that_hold_no_study_are_refused(tmp_path):
    def check(path):
        storage_lib.check_sqlite_file(f"sqlite:///{path}", "--flag")

    check(tmp_path / "missing.db")  # A new study database.
    study_db = tmp_path / "study.db"
    optuna.create_study(storage=f"sqlite:///{study_db}", study_name="s")
    check(study_db)
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 10)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    cases = [
        (empty, "--flag: .*empty.db is empty \\(0 bytes\\), not a study database; restore"),
        (garbage, "garbage.db is not a SQLite database"),
        (other, "other.db is a SQLite database without Optuna's study tables \\(it has notes\\)"),
        (tmp_path, "is a folder, not a study database"),
    ]
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            check(path)


def test_open_storage_names_the_flag_and_hides_the_password(tmp_path):
    with pytest.raises(ValueError, match="--compare_study=redis://x: expected sqlite:///FILE"):
        storage_lib.open_storage("redis://x", "--compare_study")
    with pytest.raises(ValueError, match=r"--storage=postgresql://u:\*\*\*@127.0.0.1:1/db: cannot"):
        storage_lib.open_storage("postgresql://u:secret@127.0.0.1:1/db")
    url = f"sqlite:///{tmp_path / 'search.db'}"
    storage = storage_lib.open_storage(url, heartbeat_interval=2, grace_period=5, max_retry=1)
    assert storage.get_heartbeat_interval() == 2
    assert storage.get_heartbeat_stale_trial_callback() is not None
    assert storage_lib.study_names(storage) == []
    plain = storage_lib.open_storage(url)
    assert plain.get_heartbeat_interval() is None
    optuna.create_study(storage=plain, study_name="a")
    assert storage_lib.study_names(storage) == ["a"]


def test_quiet_optuna_restores_the_log_level():
    optuna.logging.set_verbosity(optuna.logging.INFO)
    with storage_lib.quiet_optuna():
        assert optuna.logging.get_verbosity() == optuna.logging.WARNING
    with storage_lib.quiet_optuna(optuna.logging.ERROR):
        assert optuna.logging.get_verbosity() == optuna.logging.ERROR
    assert optuna.logging.get_verbosity() == optuna.logging.INFO


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_heartbeat_ages_of_running_trials(tmp_path):
    storage = storage_lib.open_storage(
        f"sqlite:///{tmp_path / 'search.db'}", heartbeat_interval=60, grace_period=120
    )
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    assert storage_lib.heartbeat_ages(study, study.get_trials()) == {}  # None sent yet.
    storage.record_heartbeat(trial._trial_id)  # noqa: SLF001
    ages = storage_lib.heartbeat_ages(study, study.get_trials())
    assert list(ages) == [trial.number] and 0 <= ages[trial.number] < 60


def _open_each(urls, barrier, errors) -> None:
    """A worker: opens each URL as soon as every worker is ready to (spawned: no TensorFlow)."""
    for url in urls:
        barrier.wait()
        try:
            storage_lib.open_storage(url)
        except ValueError as e:
            errors.put(str(e))


def open_together(urls, workers=4) -> list[str]:
    """Real processes that open each new database at the same moment; their errors."""
    context = multiprocessing.get_context("spawn")
    barrier, errors = context.Barrier(workers), context.Queue()
    processes = [
        context.Process(target=_open_each, args=(urls, barrier, errors)) for _ in range(workers)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
        assert p.exitcode == 0, p.exitcode
    found = []
    while not errors.empty():
        found.append(errors.get())
    return found


def test_workers_opening_a_new_sqlite_database_together_all_succeed(tmp_path):
    """One creates the file and the tables while the others wait; none sees it half made."""
    urls = [f"sqlite:///{tmp_path / f'search{i}.db'}" for i in range(3)]
    assert open_together(urls) == []
    for url in urls:
        assert storage_lib.study_names(storage_lib.open_storage(url)) == []
