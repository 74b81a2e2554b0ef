"""Many workers on one study in a real PostgreSQL server that the test starts.

Two worker processes (each with its own --model_dir, as on two machines) share
one study; one is killed with SIGKILL in the middle of a trial: its candidate
must be evaluated again by the other, the study must end with exactly
--num_trials candidates, none lost or done twice, and the same command run
again resumes the study.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import optuna
import psycopg
import pytest

from tests.isolated import run_module, run_module_cases, start_module
from tests.test_search import one_line_error, tiny_flags
from tests.test_search_storage import open_together
from tvn_tf.search import storage as storage_lib


def _postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server on a free localhost port; its URL."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_postgres = []
    folder = tempfile.mkdtemp(prefix="tvn_pg_")
    if os.geteuid() == 0:  # initdb and pg_ctl refuse to run as root.
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    data, port = os.path.join(folder, "data"), _free_port()

    def run(*cmd):
        subprocess.run(as_postgres + list(cmd), check=True, capture_output=True, timeout=120)

    run(f"{bindir}/initdb", "-D", data, "-U", "tvn", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(f"{bindir}/pg_ctl", "-D", data, "-o", options, "-l", f"{folder}/log", "-w", "start")
    try:
        run(f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "tvn", "tvn")
        yield f"postgresql://tvn@127.0.0.1:{port}/tvn"
    finally:
        subprocess.run(
            as_postgres + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


def study_trials(url):
    storage = storage_lib.open_storage(url)
    return optuna.load_study(study_name="search", storage=storage).get_trials()


def worker(flags):
    return start_module("tvn_tf.search", "--noprogress", *flags)


def test_two_workers_one_killed_then_resumed(tiny_data, postgres_url, tmp_path):
    def flags(name, budget):
        return tiny_flags(
            tiny_data["records"],
            str(tmp_path / name),
            f"--storage={postgres_url}",
            f"--num_trials={budget}",
            "--population=3",
            "--tournament_size=2",
            "--heartbeat_interval=2",
            "--grace_period=10",
        )

    a, b = worker(flags("a", 4)), worker(flags("b", 4))
    killed = None
    try:
        deadline = time.time() + 300
        while killed is None and time.time() < deadline:
            time.sleep(0.5)
            assert a.poll() is None, a.communicate()[1][-3000:]
            try:
                trials = study_trials(postgres_url)
            except (ValueError, KeyError):
                continue  # The study is not created yet.
            mine = [t for t in trials if t.user_attrs.get("worker", "").endswith(f":{a.pid}")]
            running = [
                t for t in mine if t.state.name == "RUNNING" and "architecture" in t.user_attrs
            ]
            if running and any(t.state.name in ("COMPLETE", "PRUNED") for t in mine):
                a.send_signal(signal.SIGKILL)  # In the middle of its second (or later) trial.
                a.wait()
                killed = running[0]
        assert killed is not None, "worker A never started a second trial"
        out, err = b.communicate(timeout=400)
        assert b.returncode == 0, err[-3000:]
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()

    trials = study_trials(postgres_url)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4
    workers = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in finished}
    assert {str(a.pid), str(b.pid)} <= workers  # Both did work.
    # The killed trial failed, and its candidate was evaluated again by the other worker.
    assert next(t for t in trials if t.number == killed.number).state.name == "FAIL"
    retried = [t for t in finished if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1
    assert retried[0].user_attrs["canonical"] == killed.user_attrs["canonical"]
    assert retried[0].user_attrs["worker"].endswith(f":{b.pid}")
    # No candidate lost or evaluated twice.
    assert len({t.user_attrs["canonical"] for t in finished}) == 4
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]

    # The same command again, with a larger budget: the study resumes.
    c = run_module("tvn_tf.search", "--noprogress", *flags("c", 5), timeout=400)
    assert c.returncode == 0, c.stderr[-3000:]
    finished = [t for t in study_trials(postgres_url) if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 5 and len({t.user_attrs["canonical"] for t in finished}) == 5


def test_records_of_a_study_the_server_lacks_are_kept(tiny_data, postgres_url, tmp_path):
    """A model dir with a search's records and a --study_name the server has not: refused,
    nothing created on the server; a --compare_study naming a missing study: refused."""
    model_dir = tmp_path / "records"
    model_dir.mkdir()
    (model_dir / "trials.csv").write_text("number,state\n0,COMPLETE\n")
    fresh = tmp_path / "fresh"

    def flags(folder, *extra):
        return ["--noprogress", *tiny_flags(tiny_data["records"], str(folder), *extra)]

    cases = [
        (
            flags(model_dir, f"--storage={postgres_url}", "--study_name=absent"),
            ["holds trials.csv", "has no study 'absent'"],
        ),
        (
            flags(fresh, f"--compare_study={postgres_url}#absent"),
            [f"--compare_study={postgres_url}#absent", "no such study"],
        ),
    ]
    results = run_module_cases("tvn_tf.search", [args for args, _ in cases])
    for result, (_, words) in zip(results, cases):
        one_line_error(result, *words)
    assert (model_dir / "trials.csv").read_text() == "number,state\n0,COMPLETE\n"
    assert sorted(p.name for p in model_dir.iterdir()) == ["trials.csv"]
    assert not fresh.exists()
    with storage_lib.quiet_optuna():
        names = [s.study_name for s in storage_lib.open_storage(postgres_url).get_all_studies()]
    assert "absent" not in names


def test_workers_opening_a_new_database_together_all_succeed(postgres_url):
    """Each creates Optuna's tables on the new database at once; the losers open it again."""
    server, _ = postgres_url.rsplit("/", 1)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        for i in range(3):
            connection.execute(f"CREATE DATABASE race{i}")
    urls = [f"{server}/race{i}" for i in range(3)]
    assert open_together(urls) == []
    for url in urls:
        assert storage_lib.study_names(storage_lib.open_storage(url)) == []
