"""What a study records about its trials: the attribute names, and who counts, ranks, leads.

Every trial is one candidate network. What the search knows of it is stored
as the trial's user attributes under the names below (a study written by any
worker, on any machine, is read by these names), its fitness as the trial's
value. The study's own settings are one user attribute of the study,
`SETTINGS_ATTR`.

This module loads neither TensorFlow nor Optuna: it reads trials only through
their `number`, `state`, `value` and `user_attrs`.
"""

from __future__ import annotations

from typing import Any

# The trial's user attributes.
ARCHITECTURE = "architecture"  # The candidate's JSON (`Architecture.to_json`).
CANONICAL = "canonical"  # `space.canonical_key`: one key per distinct network.
PARENT = "parent"  # The number of the trial it is a mutation of (None: not one).
MUTATION = "mutation"  # "random", "seed NAME" or what the mutation changed.
WORKER = "worker"  # HOST:PID of the worker that evaluated it.
PARAMS = "params"
FLOPS = "flops"
LATENCY_MS = "latency_ms"  # Median batch-1 TFLite latency on this machine.
LATENCY_CACHED = "latency_cached"  # Whether the latency is an earlier trial's.
FEASIBLE = "feasible"  # Whether it met the limits (and so was trained).
REASON = "reason"  # Why it was not trained, or why its training failed.
TIMINGS = "timings"  # Seconds per step: build, convert, time, train, evaluate.
FITNESS = "fitness"  # Validation video accuracy (also the trial's value).
CLIP_ACCURACY = "clip_accuracy"
OVER_BUDGET = "over_budget"  # Created past --num_trials by a race: failed, not counted.

# The study's user attribute: the settings a rerun or another worker must share.
SETTINGS_ATTR = "tvn_search_settings"

# The states of trials that count towards --num_trials.
COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")
# The states of evaluated trials: trained (COMPLETE) or infeasible (PRUNED).
FINISHED = ("COMPLETE", "PRUNED")

# What a search writes in its model dir: the records of one study.
STUDY_DB = "search.db"
TRIALS_CSV = "trials.csv"
BEST_ARCHITECTURE = "best_architecture.json"
FINAL_METRICS = "final_metrics.json"
REPORT_PNG = "search_report.png"
RECORDS = (TRIALS_CSV, BEST_ARCHITECTURE, FINAL_METRICS, REPORT_PNG)


def state(trial) -> str:
    """The trial's state by name ("COMPLETE", "PRUNED", "RUNNING", ...)."""
    return trial.state.name


def finished(trials) -> list:
    """The evaluated trials: trained or found infeasible."""
    return [t for t in trials if state(t) in FINISHED]


def counted_numbers(trials) -> list[int]:
    """The numbers of the trials that count towards the budget, in order."""
    return sorted(t.number for t in trials if state(t) in COUNTED)


def population_of(trials, size: int) -> list:
    """The best `size` completed trials: fitness, then lower latency, then older first."""
    done = [t for t in trials if state(t) == "COMPLETE" and t.value is not None]
    done.sort(key=lambda t: (-t.value, t.user_attrs.get(LATENCY_MS) or 0.0, t.number))
    return done[:size]


def best_trial(trials) -> Any:
    """The study's best trial (`population_of`'s first), or None before any trained."""
    best = population_of(trials, 1)
    return best[0] if best else None


def stored_latency(trials, key: str) -> float | None:
    """The latency an earlier trial measured for the network of canonical `key`, if any."""
    for t in trials:
        if t.user_attrs.get(CANONICAL) == key and LATENCY_MS in t.user_attrs:
            return float(t.user_attrs[LATENCY_MS])
    return None
