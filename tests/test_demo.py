"""The demo's guarantees, for real: one seed one result, the per-class report, the seed bench.

Runs TVN-1 scaled down (width x0.25, 32x32 input) for a few steps on a tiny
prepared demo dataset (conftest.tiny_data), in subprocesses.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.isolated import ROOT, run_module
from tvn_tf.data import demo_data


def tiny_flags(data: str, model_dir: str, *extra: str) -> list[str]:
    """The demo flagfile with a tiny model and a few steps on the tiny data."""
    return [
        f"--flagfile={ROOT}/flags/demo.cfg",
        f"--data_dir={data}",
        f"--model_dir={model_dir}",
        "--width_multiplier=0.25",
        "--image_size=32",
        "--batch_size=8",
        "--train_steps=3",
        "--warmup_epochs=0",
        "--split=logo",
        "--fold=5",
        "--eval_clips=2",
        *extra,
    ]


def model_weights(model_dir: str) -> dict[str, np.ndarray]:
    """The model's variables in the last checkpoint (optimizer slots and input state left out)."""
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    return {
        name: reader.get_tensor(name)
        for name, _ in tf.train.list_variables(path)
        if name.startswith(("model/", "optimizer/")) and "/m/" not in name
    }


def train(data: str, model_dir: str, seed: int) -> str:
    """One deterministic demo training; its stdout."""
    result = run_module(
        "tvn_tf.train", *tiny_flags(data, model_dir, f"--seed={seed}", "--deterministic")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def seven(tiny_data, tmp_path_factory):
    """A training run with seed 7: its folder and stdout."""
    model_dir = tmp_path_factory.mktemp("demo") / "seven"
    return model_dir, train(tiny_data["records"], str(model_dir), 7)


def test_one_seed_gives_one_result_and_seeds_differ(seven, tiny_data, tmp_path):
    runs = {"a": seven[0]}
    for name, seed in (("b", 7), ("c", 8)):
        runs[name] = tmp_path / name
        train(tiny_data["records"], str(runs[name]), seed)
    a, b, c = (model_weights(str(path)) for path in runs.values())
    assert a.keys() == b.keys() == c.keys() and len(a) > 10
    assert all(np.array_equal(a[k], b[k]) for k in a), "one seed, two results"
    # The same held-out scores, to the last digit.
    assert (runs["a"] / "metrics.json").read_text() == (runs["b"] / "metrics.json").read_text()
    differ = [k for k in a if a[k].dtype.kind == "f" and not np.array_equal(a[k], c[k])]
    assert len(differ) > len(a) // 2, "another seed should give other weights"


def test_training_prints_per_class_accuracy_worst_first(seven):
    model_dir, stdout = seven
    lines = stdout.splitlines()
    start = lines.index("Per-class test video accuracy:")
    table = lines[start + 1 : start + 5]
    names = [line.split()[0] for line in table]
    assert sorted(names) == sorted(c.name for c in demo_data.DEMO_CLASSES[:4])
    accuracies = [float(line.split()[1].rstrip("%")) for line in table]
    assert accuracies == sorted(accuracies)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    for name, accuracy in zip(names, accuracies):
        assert accuracy == pytest.approx(100 * metrics["per_class_accuracy"][name], abs=0.05)
    for line in table:  # A class with errors names the class that took them.
        done, total = map(int, line.split()[2].split("/"))
        assert (done < total) == ("most often taken for" in line)


def test_bench_demo_runs_each_seed_fresh_and_ends_with_json(tiny_data, tmp_path):
    bench = ["tools/bench_demo.py", "--seeds=2", "--seed=3"]
    result = run_module(*bench, *tiny_flags(tiny_data["records"], str(tmp_path / "bench"))[1:])
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    per_seed = [line for line in lines if line.startswith("seed ")]
    assert [line.split(":")[0] for line in per_seed] == ["seed 3", "seed 4"]
    assert all("classes below 50%:" in line and "s of training" in line for line in per_seed)
    summary = json.loads(lines[-1])
    assert summary["seeds"] == [3, 4]
    assert set(summary) == {
        "seeds",
        "video_accuracy_min",
        "video_accuracy_mean",
        "video_accuracy_max",
        "train_seconds_mean",
    }
    assert summary["video_accuracy_min"] <= summary["video_accuracy_mean"]
    assert summary["video_accuracy_mean"] <= summary["video_accuracy_max"]
    assert sorted(os.listdir(tmp_path / "bench")) == ["seed3", "seed4"]

    # Again into the same folder: refused in one line, nothing overwritten.
    again = run_module(*bench, *tiny_flags(tiny_data["records"], str(tmp_path / "bench"))[1:])
    assert again.returncode != 0 and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("bench_demo: --model_dir=")
