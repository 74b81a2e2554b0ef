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

The flags map onto `tvn_tf.search.config.SearchConfig` (defaults are its own);
the proxy training's flags onto its `proxy`, a `TrainConfig`, with the same
names and meaning as `tvn_tf.train`'s.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings

from absl import app
from absl import flags
from absl import logging

from tvn_tf import cli

cli.start()

from tvn_tf import data_flags  # noqa: E402  (after cli.start)
from tvn_tf.search import algorithms  # noqa: E402
from tvn_tf.search import config as config_lib  # noqa: E402
from tvn_tf.search import engine  # noqa: E402
from tvn_tf.search import space as space_lib  # noqa: E402
from tvn_tf.training import optimization  # noqa: E402

FLAGS = flags.FLAGS
_DEFAULTS = config_lib.SearchConfig(model_dir="", data=None)
_PROXY = _DEFAULTS.proxy
_SPACE = _DEFAULTS.space
_RANGES = ("resolution", "frames", "frame_stride", "blocks", "filters", "repeats")


def define_flags() -> None:
    """Defines the binary's flags (not on import: other binaries share names)."""
    data_flags.define_flags()
    _define_study_flags()
    _define_space_flags()
    _define_limit_flags()
    _define_proxy_flags()


def _define_study_flags() -> None:
    """Where the study lives, which algorithm runs it, and how its workers keep alive."""
    flags.DEFINE_string("model_dir", None, "Where the study (SQLite), candidates and reports go.")
    flags.DEFINE_string(
        "storage",
        _DEFAULTS.storage,
        "Optuna storage URL shared by workers, e.g. postgresql://USER:PASSWORD@HOST:5432/tvn; "
        "empty: sqlite:///MODEL_DIR/search.db (one machine).",
    )
    flags.DEFINE_string("study_name", _DEFAULTS.study_name, "Study name in the storage.")
    flags.DEFINE_enum("algorithm", _DEFAULTS.algorithm, list(algorithms.ALGORITHMS), "Algorithm.")
    flags.DEFINE_integer("num_trials", _DEFAULTS.num_trials, "Candidates in total (all workers).")
    flags.DEFINE_integer(
        "population",
        _DEFAULTS.population,
        "Random first networks; population kept (tournament: below --num_trials).",
    )
    flags.DEFINE_integer(
        "tournament_size", _DEFAULTS.tournament_size, "Networks drawn per tournament."
    )
    flags.DEFINE_integer(
        "search_seed",
        _DEFAULTS.search_seed,
        "Seed of the search's own draws: which networks it proposes (random draws, "
        "tournaments, mutations). Not the candidates' training seed (--seed).",
    )
    flags.DEFINE_list(
        "seed_architectures",
        list(_DEFAULTS.seed_architectures),
        "Released networks (tvn1,...) or JSON files in the first population.",
    )
    flags.DEFINE_integer(
        "heartbeat_interval", _DEFAULTS.heartbeat_interval, "Seconds between heartbeats."
    )
    flags.DEFINE_integer(
        "grace_period", _DEFAULTS.grace_period, "Seconds before a silent trial is retried."
    )
    flags.DEFINE_integer("max_retry", _DEFAULTS.max_retry, "Retries of a dead worker's candidate.")
    flags.DEFINE_string(
        "compare_study",
        _DEFAULTS.compare_study,
        "Another search's --model_dir (or STORAGE_URL#STUDY) to plot against.",
    )
    flags.DEFINE_bool("progress", _DEFAULTS.progress, "Show the progress bar.")


def _define_space_flags() -> None:
    """The searched ranges, each LOW,HIGH."""
    helps = {
        "resolution": "Input resolution range",
        "frames": "Frame count range",
        "frame_stride": "Frame stride range (25 fps video: 1 to 25)",
        "blocks": "Block count range",
        "filters": "Filters per block range",
        "repeats": "Repeats per block range",
    }
    for name in _RANGES:
        low, high = getattr(_SPACE, name)
        flags.DEFINE_list(
            name, [str(low), str(high)], f"{helps[name]}: LOW,HIGH (paper: {low},{high})."
        )


def _define_limit_flags() -> None:
    """What a candidate must meet to be trained, and how its latency is measured."""
    flags.DEFINE_integer(
        "max_params", _DEFAULTS.max_params, "Parameter limit (0: none).", lower_bound=0
    )
    flags.DEFINE_float(
        "max_latency_ms",
        _DEFAULTS.max_latency_ms,
        "Latency limit per clip (0: none).",
        lower_bound=0,
    )
    flags.DEFINE_enum(
        "latency_variant",
        _DEFAULTS.latency_variant,
        config_lib.LATENCY_VARIANTS,
        "TFLite variant timed.",
    )
    flags.DEFINE_integer("threads", _DEFAULTS.threads, "Threads for timing.", lower_bound=1)
    flags.DEFINE_integer(
        "latency_runs", _DEFAULTS.latency_runs, "Timed runs per candidate.", lower_bound=1
    )


def _define_proxy_flags() -> None:
    """The brief training every candidate gets, and the final retraining of the best."""
    flags.DEFINE_integer("train_steps", _PROXY.train_steps, "Proxy training steps per candidate.")
    flags.DEFINE_integer("batch_size", _PROXY.batch_size, "Proxy (and final) batch size.")
    flags.DEFINE_enum("optimizer", _PROXY.optimizer, optimization.OPTIMIZERS, "Optimizer.")
    flags.DEFINE_float("learning_rate", _PROXY.learning_rate, "Peak learning rate per 64 clips.")
    flags.DEFINE_float("warmup_epochs", _PROXY.warmup_epochs, "Warm-up, in epochs.")
    flags.DEFINE_float("weight_decay", _PROXY.weight_decay, "Decoupled weight decay.")
    flags.DEFINE_float("label_smoothing", _PROXY.label_smoothing, "Label smoothing.")
    flags.DEFINE_float("dropout_rate", _PROXY.dropout_rate, "Dropout before the classifier.")
    flags.DEFINE_integer("eval_clips", _PROXY.eval_clips, "Clips per validation video.")
    flags.DEFINE_integer(
        "seed",
        _PROXY.seed,
        "Training seed of every candidate (the same for all), as train's --seed: "
        "initialisation, data order, augmentation, dropout. Not the search's (--search_seed).",
    )
    flags.DEFINE_integer(
        "final_epochs",
        _DEFAULTS.final_epochs,
        "Retrain the best with this many epochs and test it once (0: skip).",
    )
    flags.DEFINE_float(
        "final_learning_rate",
        _DEFAULTS.final_learning_rate,
        "Final retraining's rate per 64 (0: the proxy's).",
    )


def _pair(name: str) -> tuple[int, int]:
    values = getattr(FLAGS, name)
    try:
        low, high = (int(v) for v in values)
    except ValueError:
        raise ValueError(f"--{name}={','.join(values)}; expected two integers LOW,HIGH.") from None
    return low, high


def config_from_flags() -> config_lib.SearchConfig:
    """The `SearchConfig` the flags describe (ValueError naming a bad flag)."""
    if not FLAGS.model_dir:
        raise ValueError("--model_dir is required.")
    proxy = dataclasses.replace(
        _PROXY, **{name: FLAGS[name].value for name in config_lib.PROXY_FIELDS}
    )
    return cli.from_flags(
        config_lib.SearchConfig,
        data=data_flags.data_config_from_flags(),
        seed_architectures=tuple(FLAGS.seed_architectures),
        space=space_lib.SpaceConfig(**{name: _pair(name) for name in _RANGES}),
        proxy=proxy,
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
    cli.run(main, define_flags)
