"""tools/bench_against_tvn1.py on finished trainings: the scaled TVN-1, the timing, the table.

Every training is written as the trainer ends it (metrics.json), so the bench
trains nothing; it builds, converts and times the three networks for real (TVN-1
at 32 px, a searched network of two small blocks). The training itself is
tools/bench_search.py's `retrain` (tests/test_bench_search.py), the bisection
`scaling.largest_compound` (tests/test_scaling.py).
"""

from __future__ import annotations

import json
import os

from tests.isolated import run_module

CLASSES = ("A", "B", "C", "D")
BLOCK = {
    "spatial_type": "std",
    "spatial_kernel": 3,
    "spatial_stride": 2,
    "temporal_type": "1d",
    "temporal_kernel": 1,
    "temporal_stride": 1,
    "expand": 2,
    "repeats": 1,
    "skip": 0,
    "squeeze": 0.0,
    "context_gate": 0,
    "non_local": 0,
}
SEARCHED = {
    "name": "searched",
    "num_frames": 2,
    "frame_stride": 2,
    "image_size": 32,
    "blocks": [{**BLOCK, "filters": 8}, {**BLOCK, "filters": 16}],
}


def write_metrics(run_dir, accuracy: float, missed: int = 0) -> None:
    os.makedirs(run_dir, exist_ok=True)
    per_class = {c: (0.0 if i < missed else accuracy) for i, c in enumerate(CLASSES)}
    metrics = {"video_accuracy": accuracy, "split": "test", "per_class_accuracy": per_class}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


def test_bench_compares_the_searched_network_with_tvn1_and_tvn1_scaled(tmp_path):
    bench = tmp_path / "bench"
    folder = bench / "seed2" / "random" / "retrain" / "trial7"
    os.makedirs(folder)
    (folder / "architecture.json").write_text(json.dumps(SEARCHED))
    best = {"search_seed": 2, "algorithm": "random", "trial": 7}
    (bench / "bench_search.json").write_text(json.dumps({"overall_best": best}))
    for seed, accuracy in ((1, 0.5), (2, 0.75)):
        write_metrics(folder / f"seed{seed}", accuracy)
        write_metrics(bench / "against_tvn1" / "tvn1" / f"seed{seed}", accuracy - 0.25, 1)
        write_metrics(bench / "against_tvn1" / "tvn1_scaled" / f"seed{seed}", 0.25, 2)
    (tmp_path / "search.cfg").write_text(f"--data_dir={tmp_path / 'no_data'}\n")
    (tmp_path / "train.cfg").write_text(
        "--model=tvn1\n--image_size=32\n--width_multiplier=0.25\n"
        "--aux_classifiers=block0_0,block0_1,block2_1\n"
    )
    args = [
        "tools/bench_against_tvn1.py",
        f"--bench_dir={bench}",
        f"--flagfile_search={tmp_path / 'search.cfg'}",
        f"--flagfile_train={tmp_path / 'train.cfg'}",
        "--training_seeds=1,2",
        "--latency_rounds=1",
        "--latency_runs=2",
        # A grid of 0, -0.5, -1: TVN-1 at 32 px and a quarter of its width is tens
        # of times slower than two small blocks at each, even on a loaded machine, so
        # the scaled network is the one at -1, marked as still slower.
        "--phi_step=0.5",
        "--lowest_phi=-1",
    ]
    result = run_module(*args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tvn_tf.train" not in result.stderr  # Every training was done.
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    with open(bench / "against_tvn1" / "bench_against_tvn1.json") as f:
        assert json.load(f) == summary
    assert summary["phi"] == -1.0 and summary["phi_matched"] is False
    nets = summary["networks"]
    assert nets["searched"]["test_video_accuracy"] == [0.5, 0.75]
    assert nets["searched"]["test_video_accuracy_mean"] == 0.625
    assert nets["tvn1"]["classes_missed"] == [1, 1]
    assert nets["tvn1_scaled"]["classes_missed"] == [2, 2]
    assert nets["tvn1"]["image_size"] == 32 and nets["tvn1"]["blocks"] == 4
    assert nets["tvn1"]["name"] == "tvn1_w0.25_32px"  # The recipe's scaling flags too.
    assert nets["tvn1_scaled"]["params"] < nets["tvn1"]["params"]
    assert nets["searched"]["params"] < nets["tvn1_scaled"]["params"]
    for net in nets.values():
        assert net["latency_ms"]["float32"] > 0 and net["latency_ms"]["int8"] > 0
        assert net["flops"] > 0
    # The choice is kept: the scaled network's JSON, loadable, and its phi.
    scaled = bench / "against_tvn1" / "tvn1_scaled"
    assert json.loads((scaled / "phi.json").read_text()) == {"phi": -1.0, "matched": False}
    assert json.loads((scaled / "architecture.json").read_text())["image_size"] == 32
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0] == "| | searched | TVN-1 | TVN-1 scaled, phi -1 (slower) |"
    assert "| min / mean / max | 0.500 / 0.625 / 0.750 |" in "\n".join(table)

    bad = run_module(*args[:-2], "--lowest_phi=0", timeout=120)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("bench_against_tvn1: --phi_step=0.25 --lowest_phi=0.0; expected"), last
