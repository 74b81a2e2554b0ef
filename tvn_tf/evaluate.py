"""Evaluates a trained TVN on its test groups (or any groups of any data).

    python -m tvn_tf.evaluate --model_dir=runs/tvn1_fold1 [--checkpoint=best]

By default the data folder and split are the training run's
(MODEL_DIR/train_config.json); data flags given override them, by the rule
export follows too (`tvn_tf.model_dir.data_config`). Writes
MODEL_DIR/metrics.json (clip and video accuracy, top-5, per-class accuracy,
the confusion matrix) and MODEL_DIR/confusion.{png,csv}, and prints a summary,
then each class's video accuracy, worst first, as `train` does at its end.
"""

from __future__ import annotations

import json
import sys

from absl import app
from absl import flags

from tvn_tf import data_flags
from tvn_tf import model_dir as model_dir_lib
from tvn_tf.data import dataset as data_lib
from tvn_tf.training import metrics, trainer

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A training run's --model_dir.")
flags.DEFINE_string("checkpoint", "latest", "'latest', 'best', or a checkpoint prefix.")
flags.DEFINE_integer("eval_clips", None, "Clips per video (default: the run's).", lower_bound=1)
flags.DEFINE_enum("eval_crops", None, ["1", "3"], "Spatial views per clip (default: the run's).")
flags.DEFINE_integer("batch_size", 32, "Clips per batch.", lower_bound=1)
flags.DEFINE_enum("groups", "test", ["test", "validation", "train"], "Which side of the split.")


def evaluate(
    model_dir: str,
    data_config: data_lib.DataConfig,
    checkpoint: str = "latest",
    groups: str = "test",
    eval_clips: int | None = None,
    eval_crops: int | None = None,
    batch_size: int = 32,
) -> dict:
    """Scores a checkpoint of a run and writes metrics.json; returns the metrics.

    `data_config` is the data and split to score on (`data_flags.data_config_of_run`);
    `eval_clips` and `eval_crops` default to the run's, else the training defaults.
    """
    model, spec, path = model_dir_lib.restore_model(model_dir, checkpoint)
    # The step comes from the checkpoint itself: a prefix of any name works.
    step = model_dir_lib.checkpoint_step(path)
    run_train = (model_dir_lib.read_train_config(model_dir) or {"train": {}})["train"]
    dataset = data_lib.load_dataset(data_config)
    if dataset.class_names != spec.class_names:
        raise ValueError(
            f"--data_dir={data_config.data_dir} has {len(dataset.class_names)} "
            f"classes; the model was trained on {spec.num_classes} others."
        )
    chosen = getattr(dataset.split, groups)
    if not chosen:
        raise ValueError(
            f"--groups={groups}: the split {data_config.split} has no {groups} "
            "groups; pick another --groups or --split."
        )
    data_lib.check_shards(dataset, chosen)
    eval_clips = eval_clips or run_train.get("eval_clips", trainer.TrainConfig.eval_clips)
    eval_crops = eval_crops or run_train.get("eval_crops", trainer.TrainConfig.eval_crops)
    evaluator = trainer.Evaluator(
        model,
        dataset,
        spec.input,
        batch_size=batch_size,
        eval_clips=eval_clips,
        eval_crops=eval_crops,
    )
    result = evaluator.evaluate(chosen)
    result.update(
        step=step,
        checkpoint=path,
        split=groups,
        groups=list(chosen),
        eval_clips=eval_clips,
        eval_crops=eval_crops,
    )
    trainer.write_metrics(model_dir, result, spec.class_names)
    return result


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.model_dir:
        sys.exit("evaluate: --model_dir is required.")
    try:
        spec = model_dir_lib.read_spec(FLAGS.model_dir)  # A wrong folder is named first.
        result = evaluate(
            FLAGS.model_dir,
            data_flags.data_config_of_run(FLAGS.model_dir),
            FLAGS.checkpoint,
            FLAGS.groups,
            FLAGS.eval_clips,
            int(FLAGS.eval_crops) if FLAGS.eval_crops else None,
            FLAGS.batch_size,
        )
    except ValueError as e:
        sys.exit(f"evaluate: {e}")
    print(
        f"{result['split']} groups {result['groups']}, step {result['step']}: "
        f"video accuracy {result['video_accuracy']:.4f}, clip accuracy "
        f"{result['clip_accuracy']:.4f}, top-5 {result['top5_accuracy']:.4f} over "
        f"{result['num_test_videos']} videos ({result['eval_clips']} clips x "
        f"{result['eval_crops']} crops each)"
    )
    # As train ends: a class the model never learned shows here, worst first.
    print(f"Per-class {result['split']} video accuracy:")
    print(
        "\n".join(
            metrics.per_class_lines(
                result["per_class_accuracy"], spec.class_names, result["confusion"]
            )
        )
    )
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "step",
                    "clip_accuracy",
                    "video_accuracy",
                    "top5_accuracy",
                    "num_test_videos",
                )
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
