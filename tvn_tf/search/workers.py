"""Many workers on one study: dead workers' trials found and retried, waits explained.

A worker sends a heartbeat every --heartbeat_interval seconds while it
evaluates a trial (Optuna's `RDBStorage`). A trial whose worker died (killed,
or its machine lost) stays RUNNING until --grace_period has passed since its
last heartbeat; then the next worker that looks fails it, and Optuna's
`RetryHeartbeatStaleTrialCallback` queues a copy of it, user attributes
included, so its candidate is evaluated again (`fail_stale_trials`). A trial
whose worker died before its first heartbeat is never failed by Optuna: a
worker that finds one fails and queues it itself (`Waits`). A worker with
nothing left to start says which trial it waits for, since when, and when its
grace ends (`Waits`).

`Progress` is the worker's bar: trials done of the budget, the best fitness,
the share of feasible candidates, and the notes above it.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import socket
import sys

import optuna
from absl import logging
from tqdm import tqdm

from tvn_tf import atomic
from tvn_tf.search import records
from tvn_tf.search import storage as storage_lib


class Progress:
    """trials done / budget, best fitness, share of feasible candidates."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            self.bar = tqdm(total=total, unit="trial", dynamic_ncols=True, file=sys.stderr)

    def show(self, trials) -> None:
        """Updates the bar from the study's trials."""
        if self.bar is None:
            return
        finished = records.finished(trials)
        feasible = [t for t in finished if records.state(t) == "COMPLETE"]
        best = max((t.value for t in feasible), default=None)
        self.bar.set_postfix(
            best=f"{best:.3f}" if best is not None else "-",
            feasible=f"{len(feasible) / len(finished):.0%}" if finished else "-",
            running=sum(records.state(t) == "RUNNING" for t in trials),
            refresh=False,
        )
        self.bar.update(min(len(finished), self.bar.total) - self.bar.n)

    def note(self, message: str) -> None:
        """A line above the bar (or a warning line without one)."""
        if self.bar is not None:
            self.bar.write(f"search: {message}", file=sys.stderr)
        else:
            logging.warning("%s", message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fail_stale_trials(study: optuna.Study, grace_period: int, progress: Progress) -> None:
    """Optuna's `fail_stale_trials`, saying which trials it failed and queued again."""
    before = {
        t.number: t for t in study.get_trials(deepcopy=False) if records.state(t) == "RUNNING"
    }
    with storage_lib.quiet_optuna():
        optuna.storages.fail_stale_trials(study)
    if not before:
        return
    for t in study.get_trials(deepcopy=False):
        if t.number in before and records.state(t) == "FAIL":
            worker = before[t.number].user_attrs.get(records.WORKER, "its worker")
            progress.note(
                f"trial {t.number} ({worker}) sent no heartbeat within "
                f"--grace_period={grace_period} s: failed, and its candidate "
                "queued again."
            )


def fail_and_retry(study: optuna.Study, trial) -> None:
    """Fails a running trial and queues its candidate again, as Optuna does a stale one."""
    storage = study._storage  # noqa: SLF001
    trial_id = trial._trial_id  # noqa: SLF001
    try:
        failed = storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # Another worker did.
    callback = storage.get_heartbeat_stale_trial_callback()
    if failed and callback is not None:
        callback(study, copy.deepcopy(storage.get_trial(trial_id)))


@dataclasses.dataclass
class _Running:
    """What a waiting worker knows of a running trial."""

    trial: optuna.trial.FrozenTrial
    worker: str
    started: str  # HH:MM:SS, or "?".
    age: float | None  # Seconds since its last heartbeat (None: none yet).
    gone: bool  # Its worker was on this machine and is dead.
    running_for: float  # Seconds since it started.


def _running(trial, ages: dict[int, float]) -> _Running:
    worker = trial.user_attrs.get(records.WORKER, "a worker")
    start = trial.datetime_start
    host, _, pid = worker.rpartition(":")
    return _Running(
        trial=trial,
        worker=worker,
        started=start.strftime("%H:%M:%S") if start else "?",
        age=ages.get(trial.number),
        gone=host == socket.gethostname() and pid.isdigit() and not atomic.pid_alive(int(pid)),
        running_for=(datetime.datetime.now() - start).total_seconds() if start else 0.0,
    )


class Waits:
    """Says, once per trial and state, which running trial this worker waits for.

    Args:
      study: The study.
      heartbeat_interval: --heartbeat_interval (a trial silent for two is "silent").
      grace_period: --grace_period (when a silent trial is failed and retried).
      progress: Where the notes go.
    """

    def __init__(
        self, study: optuna.Study, heartbeat_interval: int, grace_period: int, progress: Progress
    ):
        self.study, self.progress = study, progress
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self._announced: dict[int, str] = {}

    def announce(self, trials) -> None:
        """Notes each running trial's state the first time it is seen in it."""
        running = [t for t in trials if records.state(t) == "RUNNING"]
        if not running:
            return
        ages = storage_lib.heartbeat_ages(self.study, running)
        for trial in running:
            r = _running(trial, ages)
            if r.age is None and (r.gone or r.running_for > self.grace_period):
                # Its worker died before its first heartbeat: Optuna never fails such a
                # trial, so the search would wait for it for ever.
                fail_and_retry(self.study, trial)
                self.progress.note(
                    f"trial {trial.number} (started {r.started}) never sent a heartbeat and its "
                    f"worker {r.worker} is gone: failed, and its candidate queued again."
                )
                continue
            silent = r.gone or (r.age is not None and r.age > 2 * self.heartbeat_interval)
            state = "silent" if silent else "alive"
            if self._announced.get(trial.number) == state:
                continue
            self._announced[trial.number] = state
            self.progress.note(self._silent(r) if silent else self._alive(r))

    def _silent(self, r: _Running) -> str:
        left = max(0.0, self.grace_period - (r.age or 0.0))
        retry = datetime.datetime.now() + datetime.timedelta(seconds=left)
        why = f"its worker {r.worker} is gone" if r.gone else f"{r.worker} is silent"
        beat = f"no heartbeat for {r.age:.0f} s" if r.age is not None else "no heartbeat yet"
        return (
            f"waiting for trial {r.trial.number} (started {r.started}): {why}, {beat}; "
            f"its candidate is retried when --grace_period={self.grace_period} s "
            f"ends, at about {retry:%H:%M:%S}."
        )

    def _alive(self, r: _Running) -> str:
        return (
            f"waiting for trial {r.trial.number}, running on {r.worker} since {r.started}: "
            "the budget is reached once it ends."
        )
