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
  it, user attributes included, so its candidate is evaluated again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gc
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import warnings
from typing import Any

import numpy as np

from tvn_tf import model_dir as model_dir_lib
from tvn_tf.data import splits as splits_lib
from tvn_tf.models import architecture as arch_lib
from tvn_tf.search import space as space_lib
from tvn_tf.data import dataset as data_lib

ALGORITHMS = ("tournament", "random")
LATENCY_VARIANTS = ("float32", "int8")
STUDY_DB = "search.db"
BEST_ARCHITECTURE = "best_architecture.json"
COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")
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


def open_storage(url: str, config: SearchConfig | None = None):
    """An Optuna `RDBStorage` with heartbeats and retries of dead workers' trials.

    `postgresql://` URLs use psycopg 3. Raises ValueError (one line) when the URL
    is malformed or the database cannot be reached.
    """
    import optuna

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
    shown = _redact(url)
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise ValueError(
            f"--storage={shown}: expected sqlite:///FILE, postgresql://USER@HOST:PORT/DB "
            "or mysql://..."
        )
    try:
        with _quiet_optuna():
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
    except Exception as e:  # noqa: BLE001  (SQLAlchemy's and the drivers' errors vary)
        reason = " ".join(str(getattr(e, "orig", None) or e).split())[:300]
        raise ValueError(f"--storage={shown}: cannot open the study database ({reason}).") from None


def _redact(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        auth, host = rest.rsplit("@", 1)
        if ":" in auth:
            return f"{scheme}://{auth.split(':', 1)[0]}:***@{host}"
    return url


@contextlib.contextmanager
def _quiet_optuna():
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


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


class _OverBudget(Exception):
    """A trial created after the budget was reached (a race between workers)."""


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
        check_config(config)
        self.config = config
        self.space = space_lib.SearchSpace(config.space)
        self.seeds = seed_architectures(config.seed_architectures, self.space)
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
        self.settings = settings(config, self.space, self.dataset)
        self.latency_cache: dict[str, float] = {}
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.study = self._open_study()

    def _open_study(self):
        import optuna

        if not self.config.storage:  # The SQLite file lives in the model dir.
            os.makedirs(self.config.model_dir, exist_ok=True)
        storage = open_storage(storage_url(self.config), self.config)
        name = self.config.study_name
        with _quiet_optuna():
            names = [s.study_name for s in storage.get_all_studies()]
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
                with _quiet_optuna():
                    optuna.storages.fail_stale_trials(self.study)
                trials = self.study.get_trials(deepcopy=False)
                finished = [t for t in trials if _state(t) in ("COMPLETE", "PRUNED")]
                progress.show(trials)
                if len(finished) >= config.num_trials:
                    break
                self._check_feasible(trials, finished)
                waiting = any(_state(t) == "WAITING" for t in trials)
                if len(counted_numbers(trials)) >= config.num_trials and not waiting:
                    # The rest is running elsewhere; wait in case a worker dies.
                    time.sleep(min(config.heartbeat_interval, 5))
                    continue
                try:
                    with _quiet_optuna():
                        self.study.optimize(self._objective, n_trials=1, catch=(_OverBudget,))
                except optuna.exceptions.UpdateFinishedTrialError:
                    # Taken for dead (no heartbeat within --grace_period) and queued again.
                    continue
                from tvn_tf.search import report

                report.write_all(self, config)  # Up to date while the search runs.
        finally:
            progress.close()
        return self.summary()

    def _check_feasible(self, trials, finished) -> None:
        config = self.config
        if not (config.max_params or config.max_latency_ms):
            return
        if len(finished) < min(config.population, config.num_trials):
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
        raise NothingFeasible(
            f"none of the {len(finished)} candidates of the random phase met "
            f"--max_latency_ms={config.max_latency_ms:g} --max_params={config.max_params} "
            f"({', '.join(seen) or 'nothing measured'}); relax the limits or narrow the space "
            "(--resolution, --frames, --blocks, --filters)."
        )

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
            arch, parent, mutation = self.propose(rank, trial.number, trials)
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
        start = time.perf_counter()
        model = self._build(arch)
        params = int(model.count_params())
        from tvn_tf.models import flops as flops_lib

        trial.set_user_attr("params", params)
        trial.set_user_attr("flops", int(flops_lib.count_flops(model).forward))
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
        except (FloatingPointError, ValueError) as e:
            trial.set_user_attr("timings", timings)
            trial.set_user_attr("reason", f"training failed: {str(e)[:200]}")
            raise optuna.TrialPruned(f"training failed: {e}") from None
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

        return tvn.build_model(
            arch, len(self.dataset.class_names), dropout_rate=self.config.proxy.dropout_rate
        )

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

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    model_dir_lib.write_json_atomic(path, final)
    return final
