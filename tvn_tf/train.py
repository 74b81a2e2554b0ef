"""Trains a Tiny Video Network on UCF50 (or the demo data).

    python -m tvn_tf.train --flagfile=flags/tvn1.cfg --data_dir=data/ucf50_tfrecords \
        --model_dir=runs/tvn1/fold1 --fold=1

Run the same command again after an interruption: it resumes from the last
checkpoint in --model_dir and ends after the same number of steps. Ctrl-C
saves the step it stopped at first (exit status 130). Under
`--strategy=multi_worker`, start the same command on every worker with its own
TF_CONFIG. Metrics land in MODEL_DIR/metrics.json, curves in
MODEL_DIR/tensorboard.

The flags map onto `tvn_tf.training.config.TrainConfig` (defaults and bounds
are its own), the data flags onto `DataConfig`, the model flags onto an
`Architecture`; `tvn_tf.training.trainer.train` does the rest.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags
from absl import logging

from tvn_tf import cli

cli.start()

from tvn_tf import atomic  # noqa: E402  (after cli.start)
from tvn_tf import data_flags  # noqa: E402
from tvn_tf import model_flags  # noqa: E402
from tvn_tf.data import dataset as data_lib  # noqa: E402
from tvn_tf.data import preprocessing  # noqa: E402
from tvn_tf.models import architecture as arch_lib  # noqa: E402
from tvn_tf.models import tvn  # noqa: E402
from tvn_tf.training import config as config_lib  # noqa: E402
from tvn_tf.training import metrics  # noqa: E402
from tvn_tf.training import optimization  # noqa: E402
from tvn_tf.training import strategy as strategy_lib  # noqa: E402
from tvn_tf.training import trainer  # noqa: E402

FLAGS = flags.FLAGS
_INTERRUPTED = 130  # The shell's status for a command ended by Ctrl-C (128 + SIGINT).
# The recipe's defaults and bounds live in TrainConfig (its check names the
# flag in one line): the flags below restate neither.
_DEFAULTS = config_lib.TrainConfig(model_dir="")
_SUMMARY_KEYS = (
    "step",
    "clip_accuracy",
    "video_accuracy",
    "top5_accuracy",
    "num_test_videos",
    "train_seconds",
)


def define_flags() -> None:
    """Defines the flags of the binary (not on import: other binaries share names)."""
    model_flags.define_flags()
    data_flags.define_flags()
    flags.DEFINE_string("model_dir", None, "Where checkpoints, TensorBoard logs and metrics go.")
    flags.DEFINE_integer(
        "image_size", 0, "Input resolution; overrides the model's (0: keep).", lower_bound=0
    )
    flags.DEFINE_integer(
        "num_classes",
        0,
        "Expected number of classes; 0 takes the data's. A mismatch with the data stops the run.",
        lower_bound=0,
    )
    _define_recipe_flags()
    _define_mechanics_flags()


def _define_recipe_flags() -> None:
    """What is trained, and how: model head, length, batch, optimizer and losses."""
    flags.DEFINE_enum("head", _DEFAULTS.head, tvn.HEADS, "Classifier head.")
    flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Passes over the training videos.")
    flags.DEFINE_integer(
        "train_steps", _DEFAULTS.train_steps, "Total steps; overrides --epochs when > 0."
    )
    flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Global batch size (all replicas).")
    flags.DEFINE_enum("optimizer", _DEFAULTS.optimizer, optimization.OPTIMIZERS, "Optimizer.")
    flags.DEFINE_float(
        "learning_rate",
        _DEFAULTS.learning_rate,
        "Peak learning rate for a global batch of 64; scaled linearly with --batch_size.",
    )
    flags.DEFINE_float("momentum", _DEFAULTS.momentum, "Momentum.")
    flags.DEFINE_float("warmup_epochs", _DEFAULTS.warmup_epochs, "Linear warmup, in epochs.")
    flags.DEFINE_float(
        "weight_decay",
        _DEFAULTS.weight_decay,
        "Decoupled weight decay (not on batch norm or biases).",
    )
    flags.DEFINE_float("dropout_rate", _DEFAULTS.dropout_rate, "Dropout before the classifier.")
    flags.DEFINE_float("label_smoothing", _DEFAULTS.label_smoothing, "Label smoothing.")
    flags.DEFINE_list(
        "aux_classifiers",
        list(_DEFAULTS.aux_classifiers),
        "Blocks (block{b}_{r}, e.g. block0_0) that get a training-only classifier on their "
        "pooled output (deep supervision); the saved and exported model has none.",
    )
    flags.DEFINE_float(
        "aux_loss_weight",
        _DEFAULTS.aux_loss_weight,
        "Weight of each --aux_classifiers head's loss; the logged loss includes them.",
    )
    flags.DEFINE_list(
        "learning_rate_multipliers",
        list(_DEFAULTS.learning_rate_multipliers),
        "BLOCK:FACTOR entries, e.g. block0:0.1: every application of that block takes gradient "
        "steps FACTOR times the size (its learning rate; weight decay unchanged). "
        "--optimizer=momentum only.",
    )
    flags.DEFINE_integer(
        "train_clips_per_video",
        _DEFAULTS.train_clips_per_video,
        "Random training clips drawn from each video read (each with its own start and "
        "augmentation). More than 1 amortises reading the video over its clips.",
    )
    flags.DEFINE_integer(
        "seed", _DEFAULTS.seed, "Random seed (initialisation, data order, augmentation, dropout)."
    )


def _define_mechanics_flags() -> None:
    """How the run goes: precision, devices, checkpoints and evaluation."""
    flags.DEFINE_enum(
        "mixed_precision",
        _DEFAULTS.mixed_precision,
        config_lib.PRECISIONS,
        "Compute precision; logits and loss stay float32.",
    )
    flags.DEFINE_bool("jit_compile", _DEFAULTS.jit_compile, "Compile the training step with XLA.")
    flags.DEFINE_enum(
        "strategy",
        _DEFAULTS.strategy,
        strategy_lib.STRATEGIES,
        "tf.distribute strategy; multi_worker reads TF_CONFIG.",
    )
    flags.DEFINE_string("tpu", _DEFAULTS.tpu, "TPU name or address for --strategy=tpu.")
    flags.DEFINE_integer(
        "cpu_devices",
        1,
        "Split the CPU into this many logical devices (to run --strategy=mirrored on a CPU).",
        lower_bound=1,
    )
    flags.DEFINE_bool(
        "sync_batch_norm",
        _DEFAULTS.sync_batch_norm,
        "Batch-norm statistics over the global batch instead of each replica's.",
    )
    flags.DEFINE_integer(
        "checkpoint_every", _DEFAULTS.checkpoint_every, "Steps between checkpoints."
    )
    flags.DEFINE_integer("keep_checkpoints", _DEFAULTS.keep_checkpoints, "Checkpoints kept.")
    flags.DEFINE_integer(
        "eval_every", _DEFAULTS.eval_every, "Steps between validation runs (0: at the end only)."
    )
    flags.DEFINE_integer(
        "eval_clips", _DEFAULTS.eval_clips, "Evenly spaced clips per video in evaluation."
    )
    flags.DEFINE_enum(
        "eval_crops",
        str(_DEFAULTS.eval_crops),
        [str(n) for n in preprocessing.EVAL_CROPS],
        "Spatial views per clip in evaluation: centre, or left/centre/right.",
    )
    flags.DEFINE_bool(
        "deterministic",
        _DEFAULTS.deterministic,
        "Deterministic ops and input order (slower): a resumed run then ends with the same "
        "weights.",
    )


def config_from_flags() -> config_lib.TrainConfig:
    """The `TrainConfig` the flags describe.

    Raises:
      ValueError: --model_dir is missing, or a value is out of its bounds (names the flag).
    """
    if not FLAGS.model_dir:
        raise ValueError("--model_dir is required.")
    return cli.from_flags(
        config_lib.TrainConfig,
        eval_crops=int(FLAGS.eval_crops),
        aux_classifiers=tuple(FLAGS.aux_classifiers),
        learning_rate_multipliers=tuple(FLAGS.learning_rate_multipliers),
    )


def architecture() -> arch_lib.Architecture:
    """The architecture the model flags name, at `--image_size`."""
    return model_flags.with_image_size(model_flags.architecture_from_flags(), FLAGS.image_size)


def _check_num_classes(data_config: data_lib.DataConfig) -> None:
    """Refuses data whose class count differs from `--num_classes` (when given)."""
    if FLAGS.num_classes:
        found = len(data_lib.load_dataset(data_config).class_names)
        if found != FLAGS.num_classes:
            raise ValueError(
                f"--num_classes={FLAGS.num_classes} but --data_dir="
                f"{data_config.data_dir} has {found} classes."
            )


def _print_result(result: dict, data_config: data_lib.DataConfig) -> None:
    """The final metrics: one summary line, then each class's video accuracy, worst first."""
    logging.info("Done: %s", {k: v for k, v in result.items() if k in _SUMMARY_KEYS})
    if "video_accuracy" not in result:
        return
    print(
        f"{result['split']} video accuracy {result['video_accuracy']:.4f}, clip accuracy "
        f"{result['clip_accuracy']:.4f}, top-5 {result['top5_accuracy']:.4f} over "
        f"{result['num_test_videos']} videos; step {result['step']}; "
        f"{result['train_seconds']:.0f} s of training"
    )
    # Per class, worst first: a class the run never learned shows here, not only in the PNG.
    print(f"Per-class {result['split']} video accuracy:")
    names = data_lib.load_dataset(data_config).class_names
    lines = metrics.per_class_lines(result["per_class_accuracy"], names, result["confusion"])
    print("\n".join(lines))


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    # TensorFlow's checkpoint saver logs a line per save through absl: keep the bar clean.
    logging.get_absl_handler().addFilter(lambda r: "functional_saver" not in r.pathname)
    try:
        config = config_from_flags()
        data_config = data_flags.data_config_from_flags()
        arch = architecture()
        if FLAGS.cpu_devices > 1:
            strategy_lib.split_cpu(FLAGS.cpu_devices)
        _check_num_classes(data_config)
        result = trainer.train(config, data_config, arch)
    except (ValueError, FloatingPointError, atomic.NoSpaceError) as e:
        sys.exit(f"train: {e}")
    except trainer.Interrupted as e:  # Ctrl-C: where it stopped, not a traceback.
        print(f"train: {e}", file=sys.stderr)
        sys.exit(_INTERRUPTED)
    except KeyboardInterrupt:
        print(f"train: {trainer.Interrupted(None, None)}", file=sys.stderr)
        sys.exit(_INTERRUPTED)
    _print_result(result, data_config)


if __name__ == "__main__":
    cli.run(main, define_flags)
