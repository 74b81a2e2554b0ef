"""The architecture search on Optuna: tournament selection (the paper's) or random search.

    result = run_search(SearchConfig(model_dir="runs/search", data=DataConfig(...), ...))

One Optuna study holds everything: every trial is one candidate network, its
JSON, measured figures, parent and mutation stored as the trial's user
attributes, its fitness as the trial's value. No state lives in a process, so
any number of workers (`--storage=postgresql://...`) on any number of machines
run the same study, and a rerun resumes it:

- Trial `k` of the study (its rank among the counted trials, by number) is one
  of the `--seed_architectures` while `k` is below their count, a random draw
  while `k < population`, and after that (tournament) a mutation of the best
  of `tournament_size` trials drawn from the population, the best
  `population` completed trials. A trial's random draws are seeded by
  `(seed, trial number)`.
- Counted trials are COMPLETE (trained), PRUNED (infeasible: recorded, not
  trained), RUNNING and WAITING ones; the study stops at `num_trials` of
  them. A trial created past the budget by a race between workers fails at
  once (`over_budget`) and does not count.
- Heartbeats (`RDBStorage`): a trial whose worker died is failed by the next
  worker that looks, and `RetryHeartbeatStaleTrialCallback` queues a copy of
  it, user attributes included, so its candidate is evaluated again. A worker
  waiting on such a trial says which, since when, and when its grace ends.
- Before any training or any new study, `Search` checks every flag, path and
  URL: a study database it cannot read (an emptied search.db) or a model dir
  holding another study's records is refused, never started over; so is a
  space whose smallest network does not fit (`check_space_fits`). A candidate
  too large for the machine's memory (`memory.check_fits`) is infeasible,
  never built; a search in which no candidate trained ends non-zero.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import gc
import json
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
import warnings
from typing import Any

import numpy as np

from tvn_tf import atomic
from tvn_tf.data import splits as splits_lib
from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import memory
from tvn_tf.search import space as space_lib
from tvn_tf.data import dataset as data_lib

ALGORITHMS = ("tournament", "random")
LATENCY_VARIANTS = ("float32", "int8")
STUDY_DB = "search.db"
BEST_ARCHITECTURE = "best_architecture.json"
COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")
# What a search writes in its model dir: the records of one study.
RECORDS = ("trials.csv", BEST_ARCHITECTURE, "final_metrics.json", "search_report.png")
SETTINGS_ATTR = "tvn_search_settings"


@dataclasses.dataclass(frozen=True)
class ProxyTraining:
    """The brief training every candidate gets (same for all: steps, batch, schedule, seed)."""

    train_steps: int = 100
    batch_size: int = 16
    learning_rate: float = 0.4
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    dropout_rate: float = 0.5
    optimizer: str = "momentum"
    eval_clips: int = 2
    seed: int = 1


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything a search worker needs (the flags of `python -m tvn_tf.search`)."""

    model_dir: str
    data: data_lib.DataConfig
    storage: str = ""  # "" : sqlite:///MODEL_DIR/search.db
    study_name: str = "search"
    algorithm: str = "tournament"
    num_trials: int = 1000
    population: int = 200
    tournament_size: int = 50
    seed: int = 0
    seed_architectures: tuple[str, ...] = ()
    space: space_lib.SpaceConfig = space_lib.SpaceConfig()
    max_params: int = 0  # 0: no limit
    max_latency_ms: float = 0.0  # 0: no limit
    latency_variant: str = "float32"
    threads: int = 2
    latency_runs: int = 10
    proxy: ProxyTraining = ProxyTraining()
    final_epochs: int = 0  # 0: no final retraining
    final_learning_rate: float = 0.0  # 0: the proxy's
    heartbeat_interval: int = 60
    grace_period: int = 180
    max_retry: int = 3
    compare_study: str = ""
    progress: bool = True


def check_config(config: SearchConfig) -> None:
    """Raises ValueError naming the flag at fault."""
    checks = [
        ("algorithm", config.algorithm in ALGORITHMS, "one of " + ", ".join(ALGORITHMS)),
        ("num_trials", config.num_trials >= 1, "an integer >= 1"),
        ("population", config.population >= 1, "an integer >= 1"),
        (
            "population",
            config.algorithm != "tournament" or config.population < config.num_trials,
            f"fewer than --num_trials={config.num_trials} with --algorithm=tournament (the "
            "first --population candidates are random, the tournament only mutates after "
            "them); lower --population, raise --num_trials or use --algorithm=random",
        ),
        (
            "tournament_size",
            1 <= config.tournament_size <= config.population,
            "an integer in [1, --population]",
        ),
        ("max_params", config.max_params >= 0, "an integer >= 0 (0: no limit)"),
        ("max_latency_ms", config.max_latency_ms >= 0, "a number >= 0 (0: no limit)"),
        (
            "latency_variant",
            config.latency_variant in LATENCY_VARIANTS,
            "one of " + ", ".join(LATENCY_VARIANTS),
        ),
        ("threads", config.threads >= 1, "an integer >= 1"),
        ("train_steps", config.proxy.train_steps >= 1, "an integer >= 1"),
        (
            "num_validation_groups",
            config.data.num_validation_groups >= 1,
            "an integer >= 1 (the search scores candidates on held-out training groups)",
        ),
        ("heartbeat_interval", config.heartbeat_interval >= 1, "an integer >= 1"),
        (
            "grace_period",
            config.grace_period > config.heartbeat_interval,
            "more seconds than --heartbeat_interval",
        ),
    ]
    for flag, ok, expected in checks:
        if not ok:
            value = getattr(config, flag, None)
            if value is None:
                value = getattr(config.proxy, flag, None)
            if value is None:
                value = getattr(config.data, flag, None)
            raise ValueError(f"--{flag}={value!r}; expected {expected}.")
    space_lib.check_space_config(config.space)


def storage_url(config: SearchConfig) -> str:
    if config.storage:
        return config.storage
    return "sqlite:///" + os.path.abspath(os.path.join(config.model_dir, STUDY_DB))


def open_storage(url: str, config: SearchConfig | None = None, flag: str = "--storage"):
    """An Optuna `RDBStorage` with heartbeats and retries of dead workers' trials.

    `postgresql://` URLs use psycopg 3. Raises ValueError (one line, naming
    `flag`) when the URL is malformed, the database cannot be reached, or a
    SQLite file is not a study database (`check_sqlite_file`: refused before
    Optuna would write its tables into it).
    """
    import optuna

    check_sqlite_file(url, flag)
    shown = _redact(url)  # As given.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("postgresql"):
        engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    kwargs = {}
    if config is not None:
        kwargs = dict(
            heartbeat_interval=config.heartbeat_interval,
            grace_period=config.grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=config.max_retry
            ),
        )
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise ValueError(
            f"{flag}={shown}: expected sqlite:///FILE, postgresql://USER:PASSWORD@HOST:5432/tvn "
            "or mysql://..."
        )
    try:
        with _quiet_optuna():
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
    except Exception as e:  # noqa: BLE001  (SQLAlchemy's and the drivers' errors vary)
        reason = " ".join(str(getattr(e, "orig", None) or e).split())[:300]
        raise ValueError(f"{flag}={shown}: cannot open the study database ({reason}).") from None


def sqlite_path(url: str) -> str | None:
    """The file of a `sqlite:///FILE` URL (None: another database, or in memory)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :].split("?", 1)[0]
    return path if path and path != ":memory:" else None


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
    if tables and not {"studies", "trials"} <= tables:
        raise ValueError(
            f"{flag}: {path} is a SQLite database without Optuna's study tables "
            f"(it has {', '.join(sorted(tables)[:3])}); {what}."
        )


def check_model_dir(path: str) -> None:
    """Refuses a --model_dir that is a file or cannot be written, without creating it."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ValueError(f"--model_dir={path}: {probe} is a file, not a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"--model_dir={path}: {probe} is not writable.")


def _redact(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        auth, host = rest.rsplit("@", 1)
        if ":" in auth:
            return f"{scheme}://{auth.split(':', 1)[0]}:***@{host}"
    return url


@contextlib.contextmanager
def _quiet_optuna(level: int | None = None):
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING if level is None else level)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(previous)


def search_split(dataset: data_lib.Dataset) -> splits_lib.GroupSplit:
    """The data's split without its test groups: candidates train and score on the rest."""
    return splits_lib.GroupSplit(
        train=dataset.split.train, validation=dataset.split.validation, test=()
    )


def settings(config: SearchConfig, space: space_lib.SearchSpace, dataset) -> dict[str, Any]:
    """What a study is: a rerun or another worker with other settings is refused."""
    return {
        "algorithm": config.algorithm,
        "population": config.population,
        "tournament_size": config.tournament_size,
        "seed": config.seed,
        "seed_architectures": list(config.seed_architectures),
        "space": space.to_json(),
        "max_params": config.max_params,
        "max_latency_ms": config.max_latency_ms,
        "latency_variant": config.latency_variant,
        "threads": config.threads,
        "proxy": dataclasses.asdict(config.proxy),
        "classes": list(dataset.class_names),
        "train_groups": list(dataset.split.train),
        "validation_groups": list(dataset.split.validation),
    }


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        if json.dumps(old.get(key), sort_keys=True) != json.dumps(new.get(key), sort_keys=True):
            a, b = json.dumps(old.get(key)), json.dumps(new.get(key))
            out.append(f"{key}: {a[:60]} (study) vs {b[:60]} (now)")
    return out


def seed_architectures(names, space: space_lib.SearchSpace) -> list[arch_lib.Architecture]:
    """Released networks (or JSON files) moved into the space (`SearchSpace.project`).

    What the move changed is logged as a warning, one line per seed.
    """
    out = []
    for name in names:
        if name.endswith(".json"):
            arch = arch_lib.load_architecture_json(name)
        else:
            try:
                arch = arch_lib.get_architecture(name)
            except ValueError as e:
                raise ValueError(f"--seed_architectures: {e}") from None
        projected = space.project(arch)
        changes = space.changes(arch, projected)
        if changes:
            from absl import logging

            logging.warning(
                "--seed_architectures: %s moved into the search space: %s.",
                name,
                ", ".join(changes),
            )
        out.append(projected)
    return out


# Machine-wide lock: timing never runs beside a training on the same machine.
@contextlib.contextmanager
def machine_lock(exclusive: bool):
    """Training holds it shared, timing exclusive; a gate keeps trainings from starving timing."""
    folder = tempfile.gettempdir()
    uid = os.getuid()
    with (
        open(os.path.join(folder, f"tvn_search_{uid}.gate"), "a") as gate,
        open(os.path.join(folder, f"tvn_search_{uid}.lock"), "a") as lock,
    ):
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if not exclusive:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)


def _space_flags(config: space_lib.SpaceConfig) -> str:
    return " ".join(f"--{k}={v[0]},{v[1]}" for k, v in dataclasses.asdict(config).items())


def check_space_fits(space: space_lib.SearchSpace, config: SearchConfig, num_classes: int) -> None:
    """Refuses a search space none of whose networks can be searched, before a study is stored.

    Its smallest network (`SearchSpace.smallest`) must fit the size caps
    (`space.fits`) and this machine's memory for the proxy training
    (`memory.check_fits`), and random draws must find fitting networks.

    Raises:
      ValueError: one line naming the space's flags and the cap not met.
    """
    smallest = space.smallest()
    size = space_lib.estimate(smallest)
    flags_text = _space_flags(space.config)
    caps = [
        (size.max_activation, space_lib.MAX_ACTIVATION, "values in its largest tensor"),
        (size.max_attention, space_lib.MAX_ATTENTION, "values in its attention"),
        (size.params, space_lib.MAX_PARAMS_ESTIMATE, "parameters"),
    ]
    for value, cap, what in caps:
        if value > cap:
            raise ValueError(
                f"the search space {flags_text} holds no network small enough to search: even "
                f"its smallest ({smallest.num_frames} frames at {smallest.image_size}px, "
                f"{len(smallest.blocks)} blocks) has {value:,} {what} per clip (at most "
                f"{cap:,}); lower --resolution, --frames or --filters."
            )
    try:
        memory.check_fits(smallest, num_classes, config.proxy.batch_size, training=True)
    except memory.TooLargeError as e:
        raise ValueError(
            f"the search space {flags_text} holds no network this machine can train with "
            f"--batch_size={config.proxy.batch_size}: even its smallest: {e}"
        ) from None
    try:
        space.sample(np.random.default_rng(config.seed))
    except ValueError:
        raise ValueError(
            f"the search space {flags_text}: no network of 1000 random draws fits the size "
            "caps (only its smallest networks do); lower --resolution, --frames or --filters."
        ) from None


class _OverBudget(Exception):
    """A trial created after the budget was reached (a race between workers)."""


class _Stop(Exception):
    """No candidate could be proposed: the trial fails and the search stops with the reason."""


class NothingFeasible(ValueError):
    """No candidate of the random phase met the constraints."""


def _state(trial) -> str:
    return trial.state.name


def counted_numbers(trials) -> list[int]:
    return sorted(t.number for t in trials if _state(t) in COUNTED)


def population_of(trials, size: int) -> list:
    """The best `size` completed trials: fitness, then lower latency, then older first."""
    done = [t for t in trials if _state(t) == "COMPLETE" and t.value is not None]
    done.sort(key=lambda t: (-t.value, t.user_attrs.get("latency_ms") or 0.0, t.number))
    return done[:size]


def best_trial(trials):
    best = population_of(trials, 1)
    return best[0] if best else None


class Search:
    """One worker of a study: proposes, measures, trains and records candidates."""

    def __init__(self, config: SearchConfig):
        """Checks every flag, path and storage URL, then opens (or creates) the study.

        Everything that can be refused is refused here, before any candidate
        trains and before a new study is stored.
        """
        check_config(config)
        check_model_dir(config.model_dir)
        self.config = config
        self.space = space_lib.SearchSpace(config.space)
        self.seeds = seed_architectures(config.seed_architectures, self.space)
        if config.compare_study:
            from tvn_tf.search import report

            report.load_compare(config.compare_study)
        # Data first: an unreadable folder is refused before the study is touched.
        self.dataset = data_lib.load_dataset(config.data)
        self.split = search_split(self.dataset)
        data_lib.check_shards(self.dataset, self.split.train + self.split.validation)
        proxy = config.proxy
        steps_per_epoch = max(1, self.dataset.num_videos(self.split.train) // proxy.batch_size)
        if round(proxy.warmup_epochs * steps_per_epoch) >= proxy.train_steps:
            raise ValueError(
                f"--warmup_epochs={proxy.warmup_epochs:g} is "
                f"{round(proxy.warmup_epochs * steps_per_epoch)} steps, not shorter than "
                f"--train_steps={proxy.train_steps}: lower --warmup_epochs."
            )
        self.num_classes = len(self.dataset.class_names)
        check_space_fits(self.space, config, self.num_classes)
        self.settings = settings(config, self.space, self.dataset)
        self.latency_cache: dict[str, float] = {}
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._announced: dict[int, str] = {}
        self._stop: str | None = None
        self.study = self._open_study()

    def _records(self) -> list[str]:
        """The records of a study already in the model dir (`RECORDS`)."""
        return [n for n in RECORDS if os.path.exists(os.path.join(self.config.model_dir, n))]

    def _refuse_new_study(self, where: str) -> None:
        """A new study must not write over the records of one it cannot read."""
        records = self._records()
        if records:
            raise ValueError(
                f"{self.config.model_dir} holds {', '.join(records)} of a search, but {where} "
                f"has no study '{self.config.study_name}' to resume; restore that study "
                "(or pass the --storage and --study_name it used), or use another --model_dir."
            )

    def _open_study(self):
        import optuna

        url = storage_url(self.config)
        path = sqlite_path(url)
        if path is not None:  # Refused before the file or its folder is created.
            if not os.path.exists(path):
                self._refuse_new_study(path)
            check_sqlite_file(url)
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        storage = open_storage(url, self.config)
        os.makedirs(self.config.model_dir, exist_ok=True)
        name = self.config.study_name
        with _quiet_optuna():
            names = [s.study_name for s in storage.get_all_studies()]
            if name not in names:
                self._refuse_new_study(path or _redact(url))
            if name in names:
                study = optuna.load_study(study_name=name, storage=storage)
                old = study.user_attrs.get(SETTINGS_ATTR)
                if old is not None and old != json.loads(json.dumps(self.settings)):
                    where = self.config.storage or self.config.model_dir
                    raise ValueError(
                        f"{where} holds study '{name}' with other settings ("
                        + "; ".join(_differences(old, self.settings)[:3])
                        + "); use its flags, another --model_dir or another --study_name."
                    )
            else:
                study = optuna.create_study(
                    storage=storage, study_name=name, direction="maximize", load_if_exists=True
                )
            if study.user_attrs.get(SETTINGS_ATTR) is None:
                study.set_user_attr(SETTINGS_ATTR, self.settings)
        return study

    # The worker loop -----------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Evaluates candidates until the study holds `num_trials` finished ones."""
        import optuna

        config = self.config
        progress = _Progress(config.num_trials, config.progress)
        try:
            while True:
                self._fail_stale_trials(progress)
                trials = self.study.get_trials(deepcopy=False)
                finished = [t for t in trials if _state(t) in ("COMPLETE", "PRUNED")]
                progress.show(trials)
                if len(finished) >= config.num_trials:
                    self._check_feasible(trials, finished, final=True)
                    break
                self._check_feasible(trials, finished)
                waiting = any(_state(t) == "WAITING" for t in trials)
                if len(counted_numbers(trials)) >= config.num_trials and not waiting:
                    # The rest is running elsewhere; wait in case a worker dies.
                    self._announce_waits(trials, progress)
                    time.sleep(min(config.heartbeat_interval, 5))
                    continue
                self._stop = None
                try:
                    # Optuna logs a failed trial with its traceback: the search says
                    # what failed in one line instead.
                    with _quiet_optuna(optuna.logging.ERROR):
                        self.study.optimize(self._objective, n_trials=1, catch=(_OverBudget, _Stop))
                except optuna.exceptions.UpdateFinishedTrialError:
                    # Taken for dead (no heartbeat within --grace_period) and queued again.
                    continue
                if self._stop is not None:
                    raise ValueError(self._stop)
                from tvn_tf.search import report

                report.write_all(self, config)  # Up to date while the search runs.
        finally:
            progress.close()
        return self.summary()

    def _check_feasible(self, trials, finished, final: bool = False) -> None:
        """Raises NothingFeasible when no candidate trained: after the random phase
        (with constraints), or at the end of the budget (`final`)."""
        config = self.config
        constrained = bool(config.max_params or config.max_latency_ms)
        if not final and (
            not constrained or len(finished) < min(config.population, config.num_trials)
        ):
            return
        if any(_state(t) == "COMPLETE" for t in trials):
            return
        latencies = [t.user_attrs["latency_ms"] for t in finished if "latency_ms" in t.user_attrs]
        params = [t.user_attrs["params"] for t in finished if "params" in t.user_attrs]
        seen = []
        if latencies:
            seen.append(f"fastest {min(latencies):.1f} ms")
        if params:
            seen.append(f"fewest {min(params):,} parameters")
        reasons = sorted({t.user_attrs.get("reason", "") for t in finished} - {""})
        phase = "of the random phase " if not final else ""
        if constrained:
            raise NothingFeasible(
                f"none of the {len(finished)} candidates {phase}met "
                f"--max_latency_ms={config.max_latency_ms:g} --max_params={config.max_params} "
                f"({', '.join(seen) or 'nothing measured'}); nothing to report as the best: "
                "relax the limits or narrow the space (--resolution, --frames, --blocks, "
                "--filters)."
            )
        raise NothingFeasible(
            f"none of the {len(finished)} candidates trained "
            f"({'; '.join(reasons)[:300] or 'no reason recorded'}); nothing to report as the best."
        )

    def _fail_stale_trials(self, progress: _Progress) -> None:
        """Optuna's `fail_stale_trials`, saying which trials it failed and queued again."""
        import optuna

        before = {
            t.number: t for t in self.study.get_trials(deepcopy=False) if _state(t) == "RUNNING"
        }
        with _quiet_optuna():
            optuna.storages.fail_stale_trials(self.study)
        if not before:
            return
        for t in self.study.get_trials(deepcopy=False):
            if t.number in before and _state(t) == "FAIL":
                worker = before[t.number].user_attrs.get("worker", "its worker")
                progress.note(
                    f"trial {t.number} ({worker}) sent no heartbeat within "
                    f"--grace_period={self.config.grace_period} s: failed, and its candidate "
                    "queued again."
                )

    def _fail_and_retry(self, trial) -> None:
        """Fails a running trial and queues its candidate again, as Optuna does a stale one."""
        import copy

        import optuna

        storage = self.study._storage  # noqa: SLF001
        trial_id = trial._trial_id  # noqa: SLF001
        try:
            failed = storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # Another worker did.
        callback = storage.get_heartbeat_stale_trial_callback()
        if failed and callback is not None:
            callback(self.study, copy.deepcopy(storage.get_trial(trial_id)))

    def _announce_waits(self, trials, progress: _Progress) -> None:
        """Says, once per trial and state, which running trial this worker waits for.

        A trial whose worker stopped sending heartbeats (killed, or its machine
        lost) stays RUNNING until --grace_period has passed since its last
        heartbeat; then the next look fails it and queues its candidate again.
        """
        config = self.config
        running = [t for t in trials if _state(t) == "RUNNING"]
        if not running:
            return
        ages = heartbeat_ages(self.study, running)
        for t in running:
            worker = t.user_attrs.get("worker", "a worker")
            started = t.datetime_start.strftime("%H:%M:%S") if t.datetime_start else "?"
            age = ages.get(t.number)
            host, _, pid = worker.rpartition(":")
            gone = host == socket.gethostname() and pid.isdigit() and not atomic.pid_alive(int(pid))
            started_ago = (
                (datetime.datetime.now() - t.datetime_start).total_seconds()
                if t.datetime_start
                else 0.0
            )
            if age is None and (gone or started_ago > config.grace_period):
                # Its worker died before its first heartbeat: Optuna never fails such a
                # trial, so the search would wait for it for ever.
                self._fail_and_retry(t)
                progress.note(
                    f"trial {t.number} (started {started}) never sent a heartbeat and its "
                    f"worker {worker} is gone: failed, and its candidate queued again."
                )
                continue
            silent = gone or (age is not None and age > 2 * config.heartbeat_interval)
            state = "silent" if silent else "alive"
            if self._announced.get(t.number) == state:
                continue
            self._announced[t.number] = state
            if silent:
                left = max(0.0, config.grace_period - (age or 0.0))
                retry = datetime.datetime.now() + datetime.timedelta(seconds=left)
                why = f"its worker {worker} is gone" if gone else f"{worker} is silent"
                beat = f"no heartbeat for {age:.0f} s" if age is not None else "no heartbeat yet"
                message = (
                    f"waiting for trial {t.number} (started {started}): {why}, {beat}; "
                    f"its candidate is retried when --grace_period={config.grace_period} s "
                    f"ends, at about {retry:%H:%M:%S}."
                )
            else:
                message = (
                    f"waiting for trial {t.number}, running on {worker} since {started}: "
                    "the budget is reached once it ends."
                )
            progress.note(message)

    # One trial ---------------------------------------------------------------

    def _objective(self, trial) -> float:
        attrs = trial.user_attrs
        if "architecture" in attrs:  # A dead worker's candidate, queued again.
            arch = arch_lib.architecture_from_json(attrs["architecture"], f"trial{trial.number}")
        else:
            trials = self.study.get_trials(deepcopy=False)
            numbers = counted_numbers(trials)
            rank = numbers.index(trial.number) if trial.number in numbers else len(numbers)
            if rank >= self.config.num_trials:
                trial.set_user_attr("over_budget", True)
                raise _OverBudget(f"trial {trial.number} is past --num_trials")
            try:
                arch, parent, mutation = self.propose(rank, trial.number, trials)
            except ValueError as e:
                self._stop = f"trial {trial.number}: {e}"
                raise _Stop(self._stop) from None
            trial.set_user_attr("architecture", arch.to_json())
            trial.set_user_attr("canonical", space_lib.canonical_key(arch))
            trial.set_user_attr("parent", parent)
            trial.set_user_attr("mutation", mutation)
        trial.set_user_attr("worker", self.worker)
        return self.evaluate(trial, arch)

    def propose(self, rank: int, number: int, trials) -> tuple[arch_lib.Architecture, Any, str]:
        """The candidate of the study's `rank`-th trial: `(arch, parent number, mutation)`."""
        rng = np.random.default_rng([self.config.seed, number])
        if rank < len(self.seeds):
            return self.seeds[rank], None, f"seed {self.config.seed_architectures[rank]}"
        seen = {t.user_attrs.get("canonical") for t in trials}
        population = []
        if self.config.algorithm == "tournament" and rank >= self.config.population:
            population = population_of(trials, self.config.population)
        for _ in range(100):
            if population:
                size = min(self.config.tournament_size, len(population))
                drawn = rng.choice(len(population), size=size, replace=False)
                parent = population[int(min(drawn))]  # sorted best first
                base = arch_lib.architecture_from_json(parent.user_attrs["architecture"])
                arch, mutation = self.space.mutate(base, rng)
                parent_number = parent.number
            else:
                arch, mutation, parent_number = self.space.sample(rng), "random", None
            if space_lib.canonical_key(arch) not in seen:
                return arch, parent_number, mutation
        return arch, parent_number, mutation + " (duplicate)"

    def evaluate(self, trial, arch: arch_lib.Architecture) -> float:
        """Constraints first (built, converted, timed), then the brief training."""
        import keras
        import optuna

        config = self.config
        timings = {}
        key = space_lib.canonical_key(arch)
        keras.backend.clear_session()
        gc.collect()
        try:  # Refused from its shapes alone, before anything is allocated.
            memory.check_fits(arch, self.num_classes, config.proxy.batch_size, training=True)
        except memory.TooLargeError as e:
            trial.set_user_attr("params", memory.estimate(arch, self.num_classes).params)
            reason = f"too large to train: {e.short()} (--batch_size={config.proxy.batch_size})"
            return self._infeasible(trial, timings, reason)
        from tvn_tf.models import flops as flops_lib

        start = time.perf_counter()
        try:
            model = self._build(arch)
            flops = int(flops_lib.count_flops(model).forward)
        except Exception as e:  # noqa: BLE001  (MemoryError, TensorFlow's and Keras's OOM)
            oom = memory.out_of_memory(e)
            if oom is None:
                raise
            reason = f"ran out of memory building it: {memory.describe_out_of_memory(oom)}"
            return self._infeasible(trial, timings, reason)
        params = int(model.count_params())
        trial.set_user_attr("params", params)
        trial.set_user_attr("flops", flops)
        timings["build"] = time.perf_counter() - start
        if config.max_params and params > config.max_params:
            return self._infeasible(trial, timings, f"params {params:,} > {config.max_params:,}")
        latency = self.latency_cache.get(key)
        if latency is None:
            latency = self._stored_latency(key)
        if latency is None:
            try:
                latency = self.measure_latency(model, arch, timings)
            except Exception as e:  # noqa: BLE001  (the converter's errors vary)
                reason = " ".join(str(e).split())[:200]
                return self._infeasible(trial, timings, f"TFLite conversion failed: {reason}")
            trial.set_user_attr("latency_cached", False)
        else:
            trial.set_user_attr("latency_cached", True)
        self.latency_cache[key] = latency
        trial.set_user_attr("latency_ms", latency)
        del model
        if config.max_latency_ms and latency > config.max_latency_ms:
            return self._infeasible(
                trial, timings, f"latency {latency:.1f} ms > {config.max_latency_ms:g} ms"
            )
        trial.set_user_attr("feasible", True)
        start = time.perf_counter()
        try:
            with machine_lock(exclusive=False):
                result = self.train(arch, key)
        except Exception as e:  # noqa: BLE001  (sorted below)
            oom = memory.out_of_memory(e)
            if oom is not None:
                reason = f"training ran out of memory: {memory.describe_out_of_memory(oom)}"
            elif isinstance(e, (FloatingPointError, ValueError)):
                reason = f"training failed: {' '.join(str(e).split())[:200]}"
            else:
                raise
            trial.set_user_attr("timings", timings)
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason) from None
        timings["train"] = time.perf_counter() - start - result.get("eval_seconds", 0.0)
        timings["evaluate"] = result.get("eval_seconds", 0.0)
        fitness = float(result["video_accuracy"])
        trial.set_user_attr("fitness", fitness)
        trial.set_user_attr("clip_accuracy", float(result["clip_accuracy"]))
        trial.set_user_attr("timings", timings)
        return fitness

    def _infeasible(self, trial, timings, reason: str):
        import optuna

        trial.set_user_attr("feasible", False)
        trial.set_user_attr("reason", reason)
        trial.set_user_attr("timings", timings)
        raise optuna.TrialPruned(reason)

    def _build(self, arch):
        from tvn_tf.models import tvn

        return tvn.build_model(arch, self.num_classes, dropout_rate=self.config.proxy.dropout_rate)

    def _stored_latency(self, key: str) -> float | None:
        for t in self.study.get_trials(deepcopy=False):
            if t.user_attrs.get("canonical") == key and "latency_ms" in t.user_attrs:
                return float(t.user_attrs["latency_ms"])
        return None

    def measure_latency(self, model, arch, timings: dict) -> float:
        """Converts with `deploy.tflite`, loads with `deploy.loading` and times batch-1 runs
        (`perf.time_runs`, as `tvn_tf.benchmark` does), nothing else running."""
        from tvn_tf import perf
        from tvn_tf.deploy import loading, tflite

        config = self.config
        with machine_lock(exclusive=True):
            start = time.perf_counter()
            clips = None
            if config.latency_variant == "int8":
                rng = np.random.default_rng(0)
                shape = (arch.num_frames, arch.image_size, arch.image_size, 3)
                clips = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(4)]
            data = tflite.convert_model(model, config.latency_variant, clips)
            timings["convert"] = time.perf_counter() - start
            start = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="tvn_search_") as tmp:
                path = os.path.join(tmp, "candidate.tflite")
                with open(path, "wb") as f:
                    f.write(data)
                runner = loading.load(path, threads=config.threads)
                latency = perf.time_runs(runner.timed_call(), runs=config.latency_runs, warmup=3)
            timings["time"] = time.perf_counter() - start
        return round(latency.p50_ms, 3)  # Rounded as tvn_tf.benchmark reports it.

    def train(self, arch, key: str, final: bool = False) -> dict[str, Any]:
        """The proxy training (or, `final`, the full recipe) with the project's trainer."""
        from absl import logging

        from tvn_tf.training import trainer

        config, proxy = self.config, self.config.proxy
        folder = os.path.join(config.model_dir, "final" if final else "candidates", key)
        train_config = trainer.TrainConfig(
            model_dir=folder,
            epochs=config.final_epochs if final else 1,
            train_steps=0 if final else proxy.train_steps,
            batch_size=proxy.batch_size,
            optimizer=proxy.optimizer,
            learning_rate=(config.final_learning_rate or proxy.learning_rate)
            if final
            else proxy.learning_rate,
            warmup_epochs=proxy.warmup_epochs,
            weight_decay=proxy.weight_decay,
            dropout_rate=proxy.dropout_rate,
            label_smoothing=proxy.label_smoothing,
            eval_clips=proxy.eval_clips,
            seed=proxy.seed,
            checkpoint_every=50 if not final else 200,
            keep_checkpoints=1,
            num_sample_clips=0,
            progress_bar=final and config.progress,
            eval_every=0,
        )
        verbosity = logging.get_verbosity()
        logging.set_verbosity(logging.WARNING if not final else verbosity)
        start = time.perf_counter()
        try:
            result = trainer.train(
                train_config, config.data, arch, split=None if final else self.split
            )
        finally:
            logging.set_verbosity(verbosity)
        result["eval_seconds"] = max(0.0, time.perf_counter() - start - result["train_seconds"])
        if not final:  # Keep the metrics, not the weights: a search makes thousands.
            for sub in ("checkpoints", "best", "tensorboard"):
                shutil.rmtree(os.path.join(folder, sub), ignore_errors=True)
        return result

    # Results -------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        trials = self.study.get_trials(deepcopy=False)
        best = best_trial(trials)
        finished = [t for t in trials if _state(t) in ("COMPLETE", "PRUNED")]
        out = {
            "study": self.config.study_name,
            "algorithm": self.config.algorithm,
            "trials": len(finished),
            "feasible": sum(_state(t) == "COMPLETE" for t in finished),
            "best_trial": best.number if best else None,
            "best_fitness": best.value if best else None,
            "best_latency_ms": best.user_attrs.get("latency_ms") if best else None,
            "best_params": best.user_attrs.get("params") if best else None,
        }
        return out


class _Progress:
    """trials done / budget, best fitness, share of feasible candidates."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="trial", dynamic_ncols=True, file=sys.stderr)

    def show(self, trials) -> None:
        if self.bar is None:
            return
        finished = [t for t in trials if _state(t) in ("COMPLETE", "PRUNED")]
        feasible = [t for t in finished if _state(t) == "COMPLETE"]
        best = max((t.value for t in feasible), default=None)
        self.bar.set_postfix(
            best=f"{best:.3f}" if best is not None else "-",
            feasible=f"{len(feasible) / len(finished):.0%}" if finished else "-",
            running=sum(_state(t) == "RUNNING" for t in trials),
            refresh=False,
        )
        self.bar.update(min(len(finished), self.bar.total) - self.bar.n)

    def note(self, message: str) -> None:
        """A line above the bar (or a warning line without one)."""
        if self.bar is not None:
            self.bar.write(f"search: {message}", file=sys.stderr)
        else:
            from absl import logging

            logging.warning("%s", message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def heartbeat_ages(study, trials) -> dict[int, float]:
    """Seconds since each running trial's last heartbeat, by trial number (database clock)."""
    import sqlalchemy
    from optuna.storages._rdb import models  # noqa: PLC2701  (no public heartbeat reader)

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


def run_search(config: SearchConfig) -> dict[str, Any]:
    """Runs one worker to the end of the study, writes the report, and retrains the best.

    Returns:
      The summary (trials, feasible, best trial and its figures; `final` with
      the retrained model's test metrics when `final_epochs` > 0).

    Raises:
      ValueError: one line naming the flag, folder or storage at fault.
    """
    from tvn_tf.search import report

    search = Search(config)
    try:
        summary = search.run()
    finally:
        report.write_all(search, config)
    best = best_trial(search.study.get_trials(deepcopy=False))
    if best is not None and config.final_epochs:
        summary["final"] = retrain_best(search, best)
    return summary


def retrain_best(search: Search, best) -> dict[str, Any]:
    """Retrains the best candidate with the full recipe and tests it once (MODEL_DIR/final/trialN).

    The test figures are kept in `MODEL_DIR/final_metrics.json`; a rerun whose
    best is the same network returns them instead of testing again.
    """
    config = search.config
    path = os.path.join(config.model_dir, "final_metrics.json")
    if os.path.exists(path):
        with open(path) as f:
            done = json.load(f)
        if done.get("trial") == best.number and done.get("epochs") == config.final_epochs:
            return done
    arch = arch_lib.architecture_from_json(best.user_attrs["architecture"], f"trial{best.number}")
    # One folder per best: a resumed search with a new best retrains that one.
    result = search.train(arch, f"trial{best.number}", final=True)
    final = {"trial": best.number, "epochs": config.final_epochs}
    final.update(
        {
            k: result.get(k)
            for k in ("split", "groups", "video_accuracy", "clip_accuracy", "step", "train_seconds")
            if k in result
        }
    )
    atomic.write_json(path, final)
    return final
