"""The names a study stores its trials under, and who counts, belongs to the population, leads."""

from __future__ import annotations

from tests.test_search_algorithms import FakeTrial, _State
from tvn_tf.search import records


def fake(number, state="COMPLETE", value=None, **attrs):
    return FakeTrial(number, _State(state), value, attrs)


def test_the_stored_names_are_those_every_study_holds():
    # Studies on disk and on servers are read by these names: they never change.
    assert {
        "architecture": records.ARCHITECTURE,
        "canonical": records.CANONICAL,
        "parent": records.PARENT,
        "mutation": records.MUTATION,
        "worker": records.WORKER,
        "params": records.PARAMS,
        "flops": records.FLOPS,
        "latency_ms": records.LATENCY_MS,
        "latency_cached": records.LATENCY_CACHED,
        "feasible": records.FEASIBLE,
        "reason": records.REASON,
        "timings": records.TIMINGS,
        "fitness": records.FITNESS,
        "clip_accuracy": records.CLIP_ACCURACY,
        "over_budget": records.OVER_BUDGET,
        "tvn_search_settings": records.SETTINGS_ATTR,
        "search.db": records.STUDY_DB,
    } == {
        name: name
        for name in (
            "architecture",
            "canonical",
            "parent",
            "mutation",
            "worker",
            "params",
            "flops",
            "latency_ms",
            "latency_cached",
            "feasible",
            "reason",
            "timings",
            "fitness",
            "clip_accuracy",
            "over_budget",
            "tvn_search_settings",
            "search.db",
        )
    }
    assert records.RECORDS == (
        "trials.csv",
        "best_architecture.json",
        "final_metrics.json",
        "search_report.png",
    )


def test_counted_and_finished_trials():
    trials = [
        fake(3, "RUNNING"),
        fake(0, "COMPLETE", 0.5),
        fake(1, "PRUNED"),
        fake(2, "FAIL"),
        fake(5, "WAITING"),
        fake(4, "COMPLETE", 0.1),
    ]
    assert records.counted_numbers(trials) == [0, 1, 3, 4, 5]
    assert [t.number for t in records.finished(trials)] == [0, 1, 4]
    assert records.state(trials[0]) == "RUNNING"


def test_the_population_is_the_best_completed_then_faster_then_older():
    trials = [
        fake(0, "COMPLETE", 0.5, latency_ms=2.0),
        fake(1, "COMPLETE", 0.9, latency_ms=3.0),
        fake(2, "COMPLETE", 0.9, latency_ms=1.0),
        fake(3, "COMPLETE", 0.9, latency_ms=1.0),
        fake(4, "PRUNED", None, latency_ms=0.1),
        fake(5, "RUNNING", None),
        fake(6, "COMPLETE", 0.7),  # No latency recorded: taken as 0.
    ]
    assert [t.number for t in records.population_of(trials, 10)] == [2, 3, 1, 6, 0]
    assert [t.number for t in records.population_of(trials, 2)] == [2, 3]
    assert records.best_trial(trials).number == 2
    assert records.best_trial([fake(0, "PRUNED"), fake(1, "RUNNING")]) is None
    assert records.best_trial([]) is None


def test_a_latency_measured_once_is_found_by_canonical_key():
    trials = [
        fake(0, "PRUNED", canonical="a"),  # Refused before timing.
        fake(1, "COMPLETE", 0.5, canonical="b", latency_ms=2.5),
        fake(2, "PRUNED", canonical="a", latency_ms=4),
    ]
    assert records.stored_latency(trials, "a") == 4.0
    assert records.stored_latency(trials, "b") == 2.5
    assert records.stored_latency(trials, "c") is None
