"""The search under hostile use: unreadable studies, dead workers, impossible limits.

Every refusal is one line naming the file or flag, a non-zero exit, and the
records already in the model dir (trials.csv, best_architecture.json, the study
database) left as they were. The refusals run in one child process
(`run_module_cases`); the dead worker is a real worker process killed with
SIGKILL in the middle of the last trial of its study.
"""

from __future__ import annotations

import csv
import json
import signal
import socket
import sqlite3
import time

import optuna
import pytest

from tests.isolated import run_module, run_module_cases, start_module
from tests.test_search import one_line_error, tiny_flags, trials_of
from tvn_tf.search import records as records_lib
from tvn_tf.search import storage as storage_lib

OLD_TRIALS = "number,state\n0,COMPLETE\n"
OLD_BEST = '{"old": "best"}'


def _records(folder, db: bytes | None) -> dict[str, bytes]:
    """A model dir holding an earlier study's records; `db` the bytes of its search.db."""
    folder.mkdir()
    (folder / "trials.csv").write_text(OLD_TRIALS)
    (folder / records_lib.BEST_ARCHITECTURE).write_text(OLD_BEST)
    if db is not None:
        (folder / records_lib.STUDY_DB).write_bytes(db)
    return _snapshot(folder)


def _snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_refusals_name_the_file_or_flag_and_keep_the_records(tiny_data, tmp_path):
    records = tiny_data["records"]
    kept = {
        "empty": _records(tmp_path / "empty", b""),
        "lost": _records(tmp_path / "lost", None),
        "garbage": _records(tmp_path / "garbage", b"not a database, something else" * 10),
    }
    # A real study named "search", and records: another --study_name would start over them.
    named = tmp_path / "named"
    named.mkdir()
    optuna.create_study(
        storage=f"sqlite:///{named / records_lib.STUDY_DB}",
        study_name="search",
        direction="maximize",
    )
    (named / "trials.csv").write_text(OLD_TRIALS)
    kept["named"] = _snapshot(named)
    # Another program's SQLite database given as --storage.
    other_db = tmp_path / "other.db"
    with sqlite3.connect(other_db) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    other_bytes = other_db.read_bytes()
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    fresh = tmp_path / "fresh"

    def flags(model_dir, *extra):
        return ["--noprogress", *tiny_flags(records, str(model_dir), *extra)]

    cases = [  # (arguments, words of the one line)
        (flags(tmp_path / "empty"), ["search.db is empty (0 bytes)", "restore"]),
        (flags(tmp_path / "lost"), ["holds trials.csv, best_architecture.json", "no study"]),
        (flags(tmp_path / "garbage"), ["search.db is not a SQLite database"]),
        (flags(named, "--study_name=other"), ["holds trials.csv", "no study 'other'"]),
        (
            flags(fresh, f"--storage=sqlite:///{other_db}"),
            ["other.db is a SQLite database without Optuna's study tables"],
        ),
        (flags(fresh, "--num_trials=3", "--population=3"), ["--population=3", "--num_trials=3"]),
        (flags(fresh, f"--compare_study={tmp_path / 'nowhere'}"), ["--compare_study", "nowhere"]),
        (
            flags(fresh, f"--compare_study={tmp_path / 'empty'}"),
            ["--compare_study", "empty (0 bytes)"],
        ),
        (
            flags(fresh, "--compare_study=postgresql://u@127.0.0.1:1/db"),
            ["--compare_study=postgresql://u@127.0.0.1:1/db", "cannot open"],
        ),
        (
            flags(fresh, "--resolution=1024,1024", "--frames=512,512"),
            ["--resolution=1024,1024", "holds no network small enough", "--frames"],
        ),
        (flags(a_file), ["--model_dir", "is a file"]),
        (
            flags(
                tmp_path / "too_slow",
                "--algorithm=random",
                "--num_trials=1",
                "--population=2",
                "--tournament_size=1",
                "--max_latency_ms=0.0001",
            ),
            ["none of the 1 candidates met --max_latency_ms=0.0001", "fastest"],
        ),
    ]
    results = run_module_cases("tvn_tf.search", [args for args, _ in cases])
    for result, (_, words) in zip(results, cases):
        one_line_error(result, *words)
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for name, before in kept.items():  # Nothing lost, nothing added.
        assert _snapshot(tmp_path / name) == before, name
    assert other_db.read_bytes() == other_bytes
    assert not fresh.exists()  # Refused before anything was stored.
    # The impossible limit: its candidate is on record, and nothing is called the best.
    with open(tmp_path / "too_slow" / "trials.csv") as f:
        (row,) = csv.DictReader(f)
    assert row["feasible"] == "False" and "latency" in row["reason"]
    assert not (tmp_path / "too_slow" / records_lib.BEST_ARCHITECTURE).exists()


def _running_with_heartbeat(model_dir):
    """The study's running trials once one has a candidate and a heartbeat (else [])."""
    try:
        storage = storage_lib.open_storage(f"sqlite:///{model_dir}/{records_lib.STUDY_DB}")
        study = optuna.load_study(study_name="search", storage=storage)
    except (ValueError, KeyError):
        return []  # The study is not created yet.
    running = [
        t
        for t in study.get_trials()
        if t.state.name == "RUNNING" and "architecture" in t.user_attrs
    ]
    return running if running and storage_lib.heartbeat_ages(study, running) else []


def test_a_second_worker_says_which_dead_trial_it_waits_for_then_retries_it(tiny_data, tmp_path):
    """Worker A takes the study's last trial and is killed while it times it; worker B waits.

    A times its candidate with very many runs (`--latency_runs` is no setting of
    the study), so B is sure to find the trial running; B says whose trial it
    waits for, then, once A is killed, that its worker is gone and when the
    grace period ends; then B evaluates the candidate itself. Last, a trial whose
    worker died before its first heartbeat is failed and queued again at once.
    """
    model_dir = str(tmp_path / "killed")
    flags = tiny_flags(
        tiny_data["records"],
        model_dir,
        "--algorithm=random",
        "--num_trials=1",
        "--population=2",
        "--tournament_size=1",
        "--heartbeat_interval=1",
        "--grace_period=6",
    )
    a_log = open(tmp_path / "worker_a.log", "w+")  # noqa: SIM115  (read if A ends early)
    a = start_module(
        "tvn_tf.search", "--noprogress", *flags, "--latency_runs=1000000", output=a_log
    )
    b = None
    try:
        killed = []
        while not killed and a.poll() is None:
            time.sleep(0.2)
            killed = _running_with_heartbeat(model_dir)
        if not killed:
            a_log.seek(0)
            pytest.fail(
                f"worker A ended (status {a.returncode}) before its trial started:\n"
                + a_log.read()[-3000:]
            )
        (killed,) = killed
        b = start_module("tvn_tf.search", "--noprogress", *flags)
        lines = []
        for line in b.stderr:  # Until B waits for A's trial.
            lines.append(line)
            if "waiting for trial" in line:
                break
        assert f"waiting for trial {killed.number}, running on" in lines[-1], "".join(lines)
        assert f":{a.pid} since" in lines[-1]
        a.send_signal(signal.SIGKILL)
        a.wait()
        out, err = b.communicate(timeout=400)
        assert b.returncode == 0, err[-3000:]
    finally:
        for worker in (a, b):
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()
    notes = [line for line in err.splitlines() if f"trial {killed.number}" in line]
    assert f"waiting for trial {killed.number} (started " in notes[0], err[-3000:]
    assert f":{a.pid} is gone" in notes[0]
    assert "retried when --grace_period=6 s ends, at about" in notes[0]
    assert "sent no heartbeat within --grace_period=6 s: failed" in notes[1], err[-3000:]
    trials = trials_of(model_dir)
    assert trials[killed.number].state.name == "FAIL"
    (done,) = [t for t in trials if t.state.name == "COMPLETE"]
    assert done.system_attrs["failed_trial"] == killed.number
    assert done.user_attrs["canonical"] == killed.user_attrs["canonical"]
    assert done.user_attrs["worker"].endswith(f":{b.pid}")
    assert json.loads(out.strip().splitlines()[-1])["trials"] == 1

    # A worker that died before its trial's first heartbeat: Optuna never fails such
    # a trial. A trial taken by the dead worker A (as `study.ask` takes one) and a
    # budget of 2: the next worker fails it and queues it at once, instead of waiting.
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{model_dir}/search.db")
    orphan = study.ask()
    orphan.set_user_attr("worker", f"{socket.gethostname()}:{a.pid}")
    budget = [f for f in flags if not f.startswith("--num_trials")] + ["--num_trials=2"]
    c = run_module("tvn_tf.search", "--noprogress", *budget, timeout=400)
    assert c.returncode == 0, c.stderr[-3000:]
    assert f"trial {orphan.number} (started " in c.stderr
    assert f"never sent a heartbeat and its worker {socket.gethostname()}:{a.pid} is gone" in (
        c.stderr
    )
    trials = trials_of(model_dir)
    assert trials[orphan.number].state.name == "FAIL"
    assert len([t for t in trials if t.state.name == "COMPLETE"]) == 2
