"""Searches for a Tiny Video Network: the paper's tournament evolution, or random search.

    python -m tvn_tf.search --flagfile=flags/search_demo.cfg
    python -m tvn_tf.search --flagfile=flags/search_tvn1.cfg \
        --storage=postgresql://USER:PASSWORD@HOST:5432/tvn  # the same on every worker

Each candidate is checked against --max_params and --max_latency_ms (converted
to TFLite and timed on --threads threads) before any training; a feasible one
gets the same brief training and is scored by video accuracy on validation
groups. Run the same command again to resume; it stops at --num_trials.
MODEL_DIR gets trials.csv, best_architecture.json (for train's --arch_json)
and search_report.png. The last line is one JSON object (the summary).
"""

from __future__ import annotations

import json
import sys
import warnings

from absl import app
from absl import flags
from absl import logging

from tvn_tf import data_flags
from tvn_tf.search import engine
from tvn_tf.search import space as space_lib

FLAGS = flags.FLAGS
_DEFAULT = engine.SearchConfig(model_dir="", data=None)
_PROXY = engine.ProxyTraining()
_SPACE = space_lib.SpaceConfig()


def _range_flag(name: str, help_text: str) -> None:
    low, high = getattr(_SPACE, name)
    flags.DEFINE_list(name, [str(low), str(high)], f"{help_text}: LOW,HIGH (paper: {low},{high}).")


flags.DEFINE_string("model_dir", None, "Where the study (SQLite), candidates and reports go.")
flags.DEFINE_string(
    "storage",
    "",
    "Optuna storage URL shared by workers, e.g. postgresql://USER:PASSWORD@HOST:5432/tvn; "
    "empty: sqlite:///MODEL_DIR/search.db (one machine).",
)
flags.DEFINE_string("study_name", _DEFAULT.study_name, "Study name in the storage.")
flags.DEFINE_enum("algorithm", _DEFAULT.algorithm, engine.ALGORITHMS, "Search algorithm.")
flags.DEFINE_integer("num_trials", _DEFAULT.num_trials, "Candidates in total (all workers).")
flags.DEFINE_integer(
    "population",
    _DEFAULT.population,
    "Random first networks; population kept (tournament: below --num_trials).",
)
flags.DEFINE_integer("tournament_size", _DEFAULT.tournament_size, "Networks drawn per tournament.")
flags.DEFINE_integer("search_seed", _DEFAULT.seed, "Seed of the search's draws.")
flags.DEFINE_list(
    "seed_architectures", [], "Released networks (tvn1,...) or JSON files in the first population."
)
_range_flag("resolution", "Input resolution range")
_range_flag("frames", "Frame count range")
_range_flag("frame_stride", "Frame stride range (25 fps video: 1 to 25)")
_range_flag("blocks", "Block count range")
_range_flag("filters", "Filters per block range")
_range_flag("repeats", "Repeats per block range")
flags.DEFINE_integer("max_params", 0, "Parameter limit (0: none).", lower_bound=0)
flags.DEFINE_float("max_latency_ms", 0.0, "Latency limit per clip (0: none).", lower_bound=0)
flags.DEFINE_enum("latency_variant", "float32", engine.LATENCY_VARIANTS, "TFLite variant timed.")
flags.DEFINE_integer("threads", _DEFAULT.threads, "Threads for timing.", lower_bound=1)
flags.DEFINE_integer(
    "latency_runs", _DEFAULT.latency_runs, "Timed runs per candidate.", lower_bound=1
)
flags.DEFINE_integer("train_steps", _PROXY.train_steps, "Proxy training steps per candidate.")
flags.DEFINE_integer("batch_size", _PROXY.batch_size, "Proxy (and final) batch size.")
flags.DEFINE_enum("optimizer", _PROXY.optimizer, ["momentum", "rmsprop", "adamw"], "Optimizer.")
flags.DEFINE_float("learning_rate", _PROXY.learning_rate, "Peak learning rate per 64 clips.")
flags.DEFINE_float("warmup_epochs", _PROXY.warmup_epochs, "Warm-up, in epochs.")
flags.DEFINE_float("weight_decay", _PROXY.weight_decay, "Decoupled weight decay.")
flags.DEFINE_float("label_smoothing", _PROXY.label_smoothing, "Label smoothing.")
flags.DEFINE_float("dropout_rate", _PROXY.dropout_rate, "Dropout before the classifier.")
flags.DEFINE_integer("eval_clips", _PROXY.eval_clips, "Clips per validation video.")
flags.DEFINE_integer("seed", _PROXY.seed, "Training seed (the same for every candidate).")
flags.DEFINE_integer(
    "final_epochs", 0, "Retrain the best with this many epochs and test it once (0: skip)."
)
flags.DEFINE_float("final_learning_rate", 0.0, "Final retraining's rate per 64 (0: the proxy's).")
flags.DEFINE_integer(
    "heartbeat_interval", _DEFAULT.heartbeat_interval, "Seconds between heartbeats."
)
flags.DEFINE_integer(
    "grace_period", _DEFAULT.grace_period, "Seconds before a silent trial is retried."
)
flags.DEFINE_integer("max_retry", _DEFAULT.max_retry, "Retries of a dead worker's candidate.")
flags.DEFINE_string(
    "compare_study", "", "Another search's --model_dir (or STORAGE_URL#STUDY) to plot against."
)
flags.DEFINE_bool("progress", True, "Show the progress bar.")


def _pair(name: str) -> tuple[int, int]:
    values = getattr(FLAGS, name)
    try:
        low, high = (int(v) for v in values)
    except ValueError:
        raise ValueError(f"--{name}={','.join(values)}; expected two integers LOW,HIGH.") from None
    return low, high


def config_from_flags() -> engine.SearchConfig:
    """The `SearchConfig` the flags describe (ValueError naming a bad flag)."""
    if not FLAGS.model_dir:
        raise ValueError("--model_dir is required.")
    space = space_lib.SpaceConfig(
        **{
            name: _pair(name)
            for name in ("resolution", "frames", "frame_stride", "blocks", "filters", "repeats")
        }
    )
    proxy = engine.ProxyTraining(
        train_steps=FLAGS.train_steps,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        warmup_epochs=FLAGS.warmup_epochs,
        weight_decay=FLAGS.weight_decay,
        label_smoothing=FLAGS.label_smoothing,
        dropout_rate=FLAGS.dropout_rate,
        optimizer=FLAGS.optimizer,
        eval_clips=FLAGS.eval_clips,
        seed=FLAGS.seed,
    )
    return engine.SearchConfig(
        model_dir=FLAGS.model_dir,
        data=data_flags.data_config_from_flags(),
        storage=FLAGS.storage,
        study_name=FLAGS.study_name,
        algorithm=FLAGS.algorithm,
        num_trials=FLAGS.num_trials,
        population=FLAGS.population,
        tournament_size=FLAGS.tournament_size,
        seed=FLAGS.search_seed,
        seed_architectures=tuple(FLAGS.seed_architectures),
        space=space,
        max_params=FLAGS.max_params,
        max_latency_ms=FLAGS.max_latency_ms,
        latency_variant=FLAGS.latency_variant,
        threads=FLAGS.threads,
        latency_runs=FLAGS.latency_runs,
        proxy=proxy,
        final_epochs=FLAGS.final_epochs,
        final_learning_rate=FLAGS.final_learning_rate,
        heartbeat_interval=FLAGS.heartbeat_interval,
        grace_period=FLAGS.grace_period,
        max_retry=FLAGS.max_retry,
        compare_study=FLAGS.compare_study,
        progress=FLAGS.progress,
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:  # TensorFlow's conversion and saver notes: -v 0 shows them.
        logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", category=Warning, module="optuna")
    warnings.filterwarnings("ignore", message=".*experimental.*")
    # A non-local block pooled to one position per clip: valid, if useless; the search judges it.
    warnings.filterwarnings("ignore", message="You are using a softmax over axis")
    try:
        summary = engine.run_search(config_from_flags())
    except ValueError as e:
        sys.exit(f"search: {e}")
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
