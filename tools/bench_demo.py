"""The demo's accuracy over several seeds: what a fresh run of the README's first command gets.

    python tools/bench_demo.py --seeds=3 [--model_dir=runs/bench_demo] [any tvn_tf.train flag]

Trains the demo (`flags/demo.cfg`, read first, so any flag given here overrides
it) once per seed, seeds `--seed`, `--seed`+1, ..., each into its own fresh
`MODEL_DIR/seedS`, on the same prepared data; prints per seed the held-out
video and clip accuracy, the classes below 50 percent and the training time, then
min, mean and max. One run shows what one seed got; the README's results
and docs/benchmarks.md report these figures. Last line, one JSON object: {"seeds",
"video_accuracy_min", "video_accuracy_mean", "video_accuracy_max",
"train_seconds_mean"}.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from tvn_tf import cli  # noqa: E402

cli.start()

from tvn_tf import data_flags  # noqa: E402  (after cli.start)
from tvn_tf import train  # noqa: E402
from tvn_tf.data import dataset as data_lib  # noqa: E402
from tvn_tf.training import config as config_lib  # noqa: E402
from tvn_tf.training import metrics  # noqa: E402
from tvn_tf.training import trainer  # noqa: E402

FLAGS = flags.FLAGS
DEMO_FLAGS = os.path.join(ROOT, "flags", "demo.cfg")


def define_flags() -> None:
    """Defines the tool's flags: every `tvn_tf.train` flag, and --seeds."""
    train.define_flags()
    flags.DEFINE_integer("seeds", 3, "Training runs, one per seed.", lower_bound=1)


def run_seeds(
    config: config_lib.TrainConfig, data_config: data_lib.DataConfig, arch, seeds: list[int]
) -> list[dict]:
    """Trains once per seed, each in `config.model_dir/seedS`; returns one summary per seed.

    Raises:
      ValueError: a seed's folder already exists (a bench starts every run fresh),
        or what `trainer.train` raises.
    """
    class_names = data_lib.load_dataset(data_config).class_names
    out = []
    for seed in seeds:
        model_dir = os.path.join(config.model_dir, f"seed{seed}")
        if os.path.exists(model_dir):
            raise ValueError(
                f"--model_dir={config.model_dir}: {model_dir} exists; a bench trains every "
                "seed from scratch, so use a new --model_dir."
            )
        result = trainer.train(
            dataclasses.replace(config, seed=seed, model_dir=model_dir), data_config, arch
        )
        summary = {
            "seed": seed,
            "video_accuracy": result["video_accuracy"],
            "clip_accuracy": result["clip_accuracy"],
            "below_50": metrics.classes_below(result["per_class_accuracy"], class_names),
            "train_seconds": result["train_seconds"],
        }
        below = ", ".join(summary["below_50"]) or "none"
        print(
            f"seed {seed}: {result['split']} video accuracy {summary['video_accuracy']:.4f}, "
            f"clip {summary['clip_accuracy']:.4f}, classes below 50%: {below}, "
            f"{summary['train_seconds']:.0f} s of training",
            flush=True,
        )
        out.append(summary)
    return out


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = train.config_from_flags()
        data_config = data_flags.data_config_from_flags()
        arch = train.architecture()
        seeds = [FLAGS.seed + i for i in range(FLAGS.seeds)]
        runs = run_seeds(config, data_config, arch, seeds)
    except ValueError as e:
        sys.exit(f"bench_demo: {e}")
    video = [r["video_accuracy"] for r in runs]
    seconds = [r["train_seconds"] for r in runs]
    print(
        f"video accuracy over {len(runs)} seeds: min {min(video):.4f}, mean "
        f"{sum(video) / len(video):.4f}, max {max(video):.4f}; training "
        f"{sum(seconds) / len(seconds):.0f} s per run on average"
    )
    print(
        json.dumps(
            {
                "seeds": seeds,
                "video_accuracy_min": min(video),
                "video_accuracy_mean": sum(video) / len(video),
                "video_accuracy_max": max(video),
                "train_seconds_mean": sum(seconds) / len(seconds),
            }
        )
    )


if __name__ == "__main__":
    # The demo's flagfile first, so flags given on the command line override it.
    sys.argv[1:1] = [f"--flagfile={DEMO_FLAGS}", "--model_dir=runs/bench_demo"]
    cli.run(main, define_flags)
