"""One search worker on an Optuna study: proposes, measures, trains and records candidates.

    summary = run_search(SearchConfig(model_dir="runs/search", data=DataConfig(...), ...))

One Optuna study holds everything: every trial is one candidate network, its
JSON, measured figures, parent and mutation stored as the trial's user
attributes (`records`), its fitness as the trial's value. No state lives in a
process, so any number of workers (`--storage=postgresql://...`) on any number
of machines run the same study, and a rerun resumes it:

- Trial `k` of the study (its rank among the counted trials, by number) is
  the algorithm's proposal for rank `k` (`algorithms`: the seed architectures
  first, then random draws or tournaments).
- Counted trials are COMPLETE (trained), PRUNED (infeasible: recorded, not
  trained), RUNNING and WAITING ones; the study stops at `num_trials` of
  them. A trial created past the budget by a race between workers fails at
  once (`over_budget`) and does not count.
- Dead workers' trials are failed and their candidates retried (`workers`).
- Before any training or any new study, `Search` checks every flag, path and
  URL (`config`, `study`): a study database it cannot read or a model dir
  holding another study's records is refused, never started over; so is a
  space whose smallest network does not fit. A candidate too large for the
  machine's memory (`memory.check_fits`) is infeasible, never built; a search
  in which no candidate trained ends non-zero.

Each candidate is built and counted, checked against the parameter limit,
timed as TFLite (`latency`) and checked against the latency limit; only then
is it trained briefly and scored (`proxy`).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import socket
import time
from typing import Any

import keras
import optuna

from tvn_tf.data import dataset as data_lib
from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import flops as flops_lib
from tvn_tf.models import memory
from tvn_tf.models import tvn
from tvn_tf.search import algorithms
from tvn_tf.search import config as config_lib
from tvn_tf.search import latency as latency_lib
from tvn_tf.search import proxy
from tvn_tf.search import records
from tvn_tf.search import report
from tvn_tf.search import space as space_lib
from tvn_tf.search import storage as storage_lib
from tvn_tf.search import study as study_lib
from tvn_tf.search import workers


class _OverBudget(Exception):
    """A trial created after the budget was reached (a race between workers)."""


class _Stop(Exception):
    """No candidate could be proposed: the trial fails and the search stops with the reason."""


class NothingFeasible(ValueError):
    """No candidate of the random phase met the constraints."""


class Search:
    """One worker of a study: proposes, measures, trains and records candidates."""

    def __init__(self, config: config_lib.SearchConfig):
        """Checks every flag, path and storage URL, then opens (or creates) the study.

        Everything that can be refused is refused here, before any candidate
        trains and before a new study is stored.
        """
        config_lib.check_config(config)
        config_lib.check_model_dir(config.model_dir)
        self.config = config
        self.space = space_lib.SearchSpace(config.space)
        self.algorithm = algorithms.make(
            config.algorithm,
            self.space,
            seed=config.search_seed,
            seeds=algorithms.load_seeds(config.seed_architectures, self.space),
            population=config.population,
            tournament_size=config.tournament_size,
        )
        if config.compare_study:
            report.load_compare(config.compare_study)
        # Data first: an unreadable folder is refused before the study is touched.
        dataset = data_lib.load_dataset(config.data)
        # Candidates train and are scored on the rest: the test groups are never read.
        self.dataset = dataclasses.replace(dataset, split=proxy.search_split(dataset))
        data_lib.check_shards(
            self.dataset, self.dataset.split.train + self.dataset.split.validation
        )
        proxy.check_warmup(config, self.dataset)
        self.num_classes = len(self.dataset.class_names)
        config_lib.check_space_fits(self.space, config, self.num_classes)
        self.settings = study_lib.settings(config, self.space, self.dataset)
        self.latency_cache: dict[str, float] = {}
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._stop: str | None = None
        self.study = study_lib.open_study(config, self.settings)

    # The worker loop -----------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Evaluates candidates until the study holds `num_trials` finished ones."""
        config = self.config
        progress = workers.Progress(config.num_trials, config.progress)
        waits = workers.Waits(self.study, config.heartbeat_interval, config.grace_period, progress)
        try:
            while True:
                workers.fail_stale_trials(self.study, config.grace_period, progress)
                trials = self.study.get_trials(deepcopy=False)
                finished = records.finished(trials)
                progress.show(trials)
                if len(finished) >= config.num_trials:
                    self._check_feasible(trials, finished, final=True)
                    break
                self._check_feasible(trials, finished)
                waiting = any(records.state(t) == "WAITING" for t in trials)
                if len(records.counted_numbers(trials)) >= config.num_trials and not waiting:
                    # The rest is running elsewhere; wait in case a worker dies.
                    waits.announce(trials)
                    time.sleep(min(config.heartbeat_interval, 5))
                    continue
                if self._one_trial():
                    report.write_all(self.study, config)  # Up to date while the search runs.
        finally:
            progress.close()
        return self.summary()

    def _one_trial(self) -> bool:
        """Runs one trial; False when it was taken for dead meanwhile (and queued again).

        Raises:
          ValueError: no candidate could be proposed (the search stops).
        """
        self._stop = None
        try:
            # Optuna logs a failed trial with its traceback: the search says
            # what failed in one line instead.
            with storage_lib.quiet_optuna(optuna.logging.ERROR):
                self.study.optimize(self._objective, n_trials=1, catch=(_OverBudget, _Stop))
        except optuna.exceptions.UpdateFinishedTrialError:
            # Taken for dead (no heartbeat within --grace_period) and queued again.
            return False
        if self._stop is not None:
            raise ValueError(self._stop)
        return True

    def _check_feasible(self, trials, finished, final: bool = False) -> None:
        """Raises NothingFeasible when no candidate trained: after the random phase
        (with constraints), or at the end of the budget (`final`)."""
        config = self.config
        constrained = bool(config.max_params or config.max_latency_ms)
        if not final and (
            not constrained or len(finished) < min(config.population, config.num_trials)
        ):
            return
        if any(records.state(t) == "COMPLETE" for t in trials):
            return
        attrs = [t.user_attrs for t in finished]
        latencies = [a[records.LATENCY_MS] for a in attrs if records.LATENCY_MS in a]
        params = [a[records.PARAMS] for a in attrs if records.PARAMS in a]
        seen = []
        if latencies:
            seen.append(f"fastest {min(latencies):.1f} ms")
        if params:
            seen.append(f"fewest {min(params):,} parameters")
        reasons = sorted({a.get(records.REASON, "") for a in attrs} - {""})
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

    # One trial ---------------------------------------------------------------

    def _objective(self, trial: optuna.Trial) -> float:
        attrs = trial.user_attrs
        if records.ARCHITECTURE in attrs:  # A dead worker's candidate, queued again.
            name = f"trial{trial.number}"
            arch = arch_lib.architecture_from_stored_json(attrs[records.ARCHITECTURE], name)
        else:
            arch = self._propose(trial)
        trial.set_user_attr(records.WORKER, self.worker)
        return self.evaluate(trial, arch)

    def _propose(self, trial: optuna.Trial) -> arch_lib.Architecture:
        """The algorithm's candidate for the trial's rank, recorded on the trial."""
        trials = self.study.get_trials(deepcopy=False)
        numbers = records.counted_numbers(trials)
        rank = numbers.index(trial.number) if trial.number in numbers else len(numbers)
        if rank >= self.config.num_trials:
            trial.set_user_attr(records.OVER_BUDGET, True)
            raise _OverBudget(f"trial {trial.number} is past --num_trials")
        try:
            proposal = self.algorithm.propose(rank, trial.number, trials)
        except ValueError as e:
            self._stop = f"trial {trial.number}: {e}"
            raise _Stop(self._stop) from None
        arch = proposal.architecture
        trial.set_user_attr(records.ARCHITECTURE, arch.to_json())
        trial.set_user_attr(records.CANONICAL, space_lib.canonical_key(arch))
        trial.set_user_attr(records.PARENT, proposal.parent)
        trial.set_user_attr(records.MUTATION, proposal.mutation)
        return arch

    def evaluate(self, trial: optuna.Trial, arch: arch_lib.Architecture) -> float:
        """Constraints first (built, converted, timed), then the brief training.

        Raises:
          optuna.TrialPruned: the candidate is infeasible, or its training failed
            (the reason recorded on the trial).
        """
        timings: dict[str, float] = {}
        keras.backend.clear_session()
        gc.collect()
        model = self._build_within_limits(trial, arch, timings)
        key = space_lib.canonical_key(arch)
        latency = self._latency(trial, model, arch, key, timings)
        del model
        limit = self.config.max_latency_ms
        if limit and latency > limit:
            raise self._infeasible(trial, timings, f"latency {latency:.1f} ms > {limit:g} ms")
        trial.set_user_attr(records.FEASIBLE, True)
        return self._train(trial, arch, key, timings)

    def _build_within_limits(
        self, trial: optuna.Trial, arch: arch_lib.Architecture, timings: dict
    ) -> keras.Model:
        """The candidate built and counted, if it fits memory and --max_params."""
        batch_size = self.config.proxy.batch_size
        try:  # Refused from its shapes alone, before anything is allocated.
            memory.check_fits(arch, self.num_classes, batch_size, training=True)
        except memory.TooLargeError as e:
            trial.set_user_attr(records.PARAMS, memory.estimate(arch, self.num_classes).params)
            reason = f"too large to train: {e.short()} (--batch_size={batch_size})"
            raise self._infeasible(trial, timings, reason) from None
        start = time.perf_counter()
        try:
            model = tvn.TinyVideoNetwork(
                arch, self.num_classes, dropout_rate=self.config.proxy.dropout_rate
            )
            flops = int(flops_lib.count_flops(model).forward)
        except Exception as e:  # noqa: BLE001  (MemoryError, TensorFlow's and Keras's OOM)
            oom = memory.out_of_memory(e)
            if oom is None:
                raise
            reason = f"ran out of memory building it: {memory.describe_out_of_memory(oom)}"
            raise self._infeasible(trial, timings, reason) from None
        params = int(model.count_params())
        trial.set_user_attr(records.PARAMS, params)
        trial.set_user_attr(records.FLOPS, flops)
        timings["build"] = time.perf_counter() - start
        limit = self.config.max_params
        if limit and params > limit:
            raise self._infeasible(trial, timings, f"params {params:,} > {limit:,}")
        return model

    def _latency(
        self, trial: optuna.Trial, model: keras.Model, arch, key: str, timings: dict
    ) -> float:
        """The candidate's latency: this worker's or the study's earlier figure, else timed."""
        config = self.config
        latency = self.latency_cache.get(key)
        if latency is None:
            latency = records.stored_latency(self.study.get_trials(deepcopy=False), key)
        if latency is None:
            try:
                latency = latency_lib.measure(
                    model,
                    arch,
                    variant=config.latency_variant,
                    threads=config.threads,
                    runs=config.latency_runs,
                    timings=timings,
                )
            except Exception as e:  # noqa: BLE001  (the converter's errors vary)
                reason = " ".join(str(e).split())[:200]
                raise self._infeasible(
                    trial, timings, f"TFLite conversion failed: {reason}"
                ) from None
            trial.set_user_attr(records.LATENCY_CACHED, False)
        else:
            trial.set_user_attr(records.LATENCY_CACHED, True)
        self.latency_cache[key] = latency
        trial.set_user_attr(records.LATENCY_MS, latency)
        return latency

    def _train(self, trial: optuna.Trial, arch, key: str, timings: dict) -> float:
        """The proxy training under the shared machine lock; the fitness it scores."""
        start = time.perf_counter()
        try:
            with latency_lib.machine_lock(exclusive=False):
                result = proxy.train_candidate(self.config, arch, key, self.dataset)
        except Exception as e:  # noqa: BLE001  (sorted below)
            oom = memory.out_of_memory(e)
            if oom is not None:
                reason = f"training ran out of memory: {memory.describe_out_of_memory(oom)}"
            elif isinstance(e, (FloatingPointError, ValueError)):
                reason = f"training failed: {' '.join(str(e).split())[:200]}"
            else:
                raise
            trial.set_user_attr(records.TIMINGS, timings)
            trial.set_user_attr(records.REASON, reason)
            raise optuna.TrialPruned(reason) from None
        timings["train"] = time.perf_counter() - start - result.get("eval_seconds", 0.0)
        timings["evaluate"] = result.get("eval_seconds", 0.0)
        fitness = float(result["video_accuracy"])
        trial.set_user_attr(records.FITNESS, fitness)
        trial.set_user_attr(records.CLIP_ACCURACY, float(result["clip_accuracy"]))
        trial.set_user_attr(records.TIMINGS, timings)
        return fitness

    @staticmethod
    def _infeasible(trial: optuna.Trial, timings: dict, reason: str) -> optuna.TrialPruned:
        """Records the candidate as infeasible; the error that prunes its trial, to raise."""
        trial.set_user_attr(records.FEASIBLE, False)
        trial.set_user_attr(records.REASON, reason)
        trial.set_user_attr(records.TIMINGS, timings)
        return optuna.TrialPruned(reason)

    # Results -------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The study so far: trials finished and feasible, the best trial and its figures."""
        trials = self.study.get_trials(deepcopy=False)
        best = records.best_trial(trials)
        finished = records.finished(trials)
        attrs = best.user_attrs if best else {}
        return {
            "study": self.config.study_name,
            "algorithm": self.config.algorithm,
            "trials": len(finished),
            "feasible": sum(records.state(t) == "COMPLETE" for t in finished),
            "best_trial": best.number if best else None,
            "best_fitness": best.value if best else None,
            "best_latency_ms": attrs.get(records.LATENCY_MS) if best else None,
            "best_params": attrs.get(records.PARAMS) if best else None,
        }


def run_search(config: config_lib.SearchConfig) -> dict[str, Any]:
    """Runs one worker to the end of the study, writes the report, and retrains the best.

    Returns:
      The summary (trials, feasible, best trial and its figures; `final` with
      the retrained model's test metrics when `final_epochs` > 0).

    Raises:
      ValueError: one line naming the flag, folder or storage at fault.
    """
    search = Search(config)
    try:
        summary = search.run()
    finally:
        report.write_all(search.study, config)
    best = records.best_trial(search.study.get_trials(deepcopy=False))
    if best is not None and config.final_epochs:
        summary["final"] = proxy.retrain_best(config, best)
    return summary
