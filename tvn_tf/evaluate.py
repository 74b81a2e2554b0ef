"""Evaluates a trained TVN on its test groups (or any groups of any data).

    python -m tvn_tf.evaluate --model_dir=runs/tvn1_fold1 [--checkpoint=best]

By default the data folder and split are the training run's
(MODEL_DIR/train_config.json); data flags given override them, by the rule
export follows too (`tvn_tf.run_record.data_config`). Writes
MODEL_DIR/metrics.json (clip and video accuracy, top-5, per-class accuracy,
the confusion matrix) and MODEL_DIR/confusion.{png,csv}, and prints a summary,
then each class's video accuracy, worst first, as `train` does at its end.

Only the model's weights are read from the checkpoint (never its optimizer
state). A run folder that cannot take metrics.json is refused before any
scoring, as is an --eval_clips beyond the different clips the longest video
gives; long evaluations print their progress on stderr.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time

from absl import app
from absl import flags

from tvn_tf import cli

cli.start()

from tvn_tf import atomic  # noqa: E402  (after cli.start)
from tvn_tf import data_flags  # noqa: E402
from tvn_tf import model_dir as model_dir_lib  # noqa: E402
from tvn_tf import run_record  # noqa: E402
from tvn_tf.data import dataset as data_lib  # noqa: E402
from tvn_tf.data import layout, prepare, preprocessing, sampling  # noqa: E402
from tvn_tf.training import config as config_lib  # noqa: E402
from tvn_tf.training import evaluation  # noqa: E402
from tvn_tf.training import metrics  # noqa: E402

FLAGS = flags.FLAGS
# Where a run's record lacks them, evaluation takes the training defaults.
_TRAIN_DEFAULTS = config_lib.TrainConfig(model_dir="")
_BATCH_SIZE = 32


def define_flags() -> None:
    """Defines the flags of the binary (not on import: other binaries share names)."""
    data_flags.define_flags()
    flags.DEFINE_string("model_dir", None, "A training run's --model_dir.")
    flags.DEFINE_string("checkpoint", "latest", "'latest', 'best', or a checkpoint prefix.")
    flags.DEFINE_integer("eval_clips", None, "Clips per video (default: the run's).", lower_bound=1)
    flags.DEFINE_enum(
        "eval_crops",
        None,
        [str(n) for n in preprocessing.EVAL_CROPS],
        "Spatial views per clip (default: the run's).",
    )
    flags.DEFINE_integer("batch_size", _BATCH_SIZE, "Clips per batch.", lower_bound=1)
    flags.DEFINE_enum("groups", "test", ["test", "validation", "train"], "Which side of the split.")


# Seconds between two progress lines on stderr.
PROGRESS_SECONDS = 10.0


def check_writable(model_dir: str) -> None:
    """Refuses, before any work, a run folder that metrics.json cannot be written into.

    Raises:
      ValueError: naming the folder and why (a read-only file system, no permission).
    """
    if os.access(model_dir, os.W_OK):
        return
    read_only = bool(os.statvfs(model_dir).f_flag & os.ST_RDONLY)
    why = "its file system is read-only" if read_only else "no permission to write there"
    raise ValueError(
        f"--model_dir={model_dir}: cannot write {model_dir_lib.METRICS} into it ({why}); "
        "copy the run folder somewhere writable and evaluate that copy."
    )


def distinct_clip_starts(dataset: data_lib.Dataset, groups, model_input) -> int | None:
    """How many different evaluation clips the longest video of `groups` can give.

    Evaluation clips start evenly spaced over a video (`sampling.evaluation_indices`),
    so a video of n frames has at most `n - span + 1` different ones; more
    clips per video only repeat them. Frame counts come from the manifest of
    prepared data, else from each video's header. None when no count is known.
    """
    longest = 0
    wanted = set(groups)
    if data_lib.is_prepared(dataset.config):
        with open(os.path.join(dataset.config.data_dir, prepare.MANIFEST)) as f:
            for line in f:
                entry = json.loads(line)
                if entry.get("status") == "ok" and entry.get("group") in wanted:
                    longest = max(longest, int(entry.get("frames") or 0))
    else:
        import av

        for video in layout.scan_videos(dataset.config.data_dir).videos:
            if video.group not in wanted:
                continue
            try:
                with av.open(os.path.join(dataset.config.data_dir, video.path)) as container:
                    longest = max(longest, container.streams.video[0].frames or 0)
            except (av.FFmpegError, OSError, IndexError):
                continue  # The pipeline names an unreadable video itself.
    if not longest:
        return None
    span = sampling.clip_span(model_input.num_frames, model_input.frame_stride)
    return max(longest - span, 0) + 1


def _report_progress(evaluator: evaluation.Evaluator, total: int) -> None:
    """Prints `evaluate: N/TOTAL clips` to stderr every `PROGRESS_SECONDS` while scoring."""
    forward = evaluator.forward
    done, last = 0, time.monotonic()

    def counted(clips):
        nonlocal done, last
        logits = forward(clips)
        done += int(clips.shape[0])
        if time.monotonic() - last >= PROGRESS_SECONDS:
            last = time.monotonic()
            print(f"evaluate: {done}/{total} clips scored", file=sys.stderr, flush=True)
        return logits

    evaluator.forward = counted


def _groups_to_score(
    dataset: data_lib.Dataset, data_config: data_lib.DataConfig, spec, groups: str
) -> tuple:
    """The groups of side `groups` of the split, once the data is known to fit the model.

    Raises:
      ValueError: other classes than the model's, no such groups, or a damaged shard.
    """
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
    return chosen


def _views(
    model_dir: str, dataset, chosen, spec, groups: str, eval_clips, eval_crops
) -> tuple[int, int]:
    """Clips per video and crops per clip: those given, else the run's, else training's defaults.

    Raises:
      ValueError: more clips per video than the longest video gives different ones.
    """
    run = run_record.read_run_record(model_dir)
    recorded = run.train if run is not None else {}
    given_clips = eval_clips
    eval_clips = eval_clips or recorded.get("eval_clips", _TRAIN_DEFAULTS.eval_clips)
    eval_crops = eval_crops or recorded.get("eval_crops", _TRAIN_DEFAULTS.eval_crops)
    most = distinct_clip_starts(dataset, chosen, spec.input)
    if most is not None and eval_clips > most:
        flag = (
            f"--eval_clips={eval_clips}" if given_clips else f"the run's eval_clips ({eval_clips})"
        )
        raise ValueError(
            f"{flag}: the longest video of the {groups} groups gives at most {most} "
            f"different clips of {spec.input.num_frames} frames, stride "
            f"{spec.input.frame_stride}; more only repeat them. Pass --eval_clips={most} or fewer."
        )
    return eval_clips, eval_crops


def _write_metrics(model_dir: str, result: dict, class_names) -> None:
    """`evaluation.write_metrics`; a failure names the file, and leaves no temporary behind.

    Raises:
      tvn_tf.atomic.NoSpaceError: the file system is full.
      ValueError: any other failure to write.
    """
    metrics_file = os.path.join(model_dir, model_dir_lib.METRICS)
    try:
        evaluation.write_metrics(model_dir, result, class_names)
    except OSError as e:
        atomic.remove_own_temporaries(model_dir)
        atomic.raise_if_no_space(e, metrics_file, None)
        raise ValueError(
            f"{metrics_file}: cannot write it ({e.strerror or errno.errorcode.get(e.errno, e)})."
        ) from None


def evaluate(
    model_dir: str,
    data_config: data_lib.DataConfig,
    *,
    checkpoint: str = "latest",
    groups: str = "test",
    eval_clips: int | None = None,
    eval_crops: int | None = None,
    batch_size: int = _BATCH_SIZE,
) -> dict:
    """Scores a checkpoint of a run and writes metrics.json; returns the metrics.

    `data_config` is the data and split to score on (`data_flags.data_config_of_run`);
    `eval_clips` and `eval_crops` default to the run's, else the training defaults.
    """
    model, spec, path = model_dir_lib.restore_model(model_dir, checkpoint)
    # The step comes from the checkpoint itself: a prefix of any name works.
    step = model_dir_lib.checkpoint_step(path)
    dataset = data_lib.load_dataset(data_config)
    chosen = _groups_to_score(dataset, data_config, spec, groups)
    eval_clips, eval_crops = _views(
        model_dir, dataset, chosen, spec, groups, eval_clips, eval_crops
    )
    evaluator = evaluation.Evaluator(
        model,
        dataset,
        spec.input,
        batch_size=batch_size,
        eval_clips=eval_clips,
        eval_crops=eval_crops,
    )
    total = dataset.num_videos(chosen) * eval_clips * eval_crops
    print(
        f"evaluate: scoring {total} clips ({dataset.num_videos(chosen)} videos x "
        f"{eval_clips} clips x {eval_crops} crops)",
        file=sys.stderr,
        flush=True,
    )
    _report_progress(evaluator, total)
    result = evaluator.evaluate(chosen)
    result.update(
        step=step,
        checkpoint=path,
        split=groups,
        groups=list(chosen),
        eval_clips=eval_clips,
        eval_crops=eval_crops,
    )
    _write_metrics(model_dir, result, spec.class_names)
    return result


_SUMMARY_KEYS = ("step", "clip_accuracy", "video_accuracy", "top5_accuracy", "num_test_videos")


def _print_result(result: dict, class_names) -> None:
    """A summary line, each class's video accuracy worst first, then the summary as JSON."""
    print(
        f"{result['split']} groups {result['groups']}, step {result['step']}: "
        f"video accuracy {result['video_accuracy']:.4f}, clip accuracy "
        f"{result['clip_accuracy']:.4f}, top-5 {result['top5_accuracy']:.4f} over "
        f"{result['num_test_videos']} videos ({result['eval_clips']} clips x "
        f"{result['eval_crops']} crops each)"
    )
    # As train ends: a class the model never learned shows here, worst first.
    print(f"Per-class {result['split']} video accuracy:")
    lines = metrics.per_class_lines(result["per_class_accuracy"], class_names, result["confusion"])
    print("\n".join(lines))
    print(json.dumps({k: result[k] for k in _SUMMARY_KEYS}))


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.model_dir:
        sys.exit("evaluate: --model_dir is required.")
    try:
        spec = model_dir_lib.read_spec(FLAGS.model_dir)  # A wrong folder is named first.
        check_writable(FLAGS.model_dir)
        result = evaluate(
            FLAGS.model_dir,
            data_flags.data_config_of_run(FLAGS.model_dir),
            checkpoint=FLAGS.checkpoint,
            groups=FLAGS.groups,
            eval_clips=FLAGS.eval_clips,
            eval_crops=int(FLAGS.eval_crops) if FLAGS.eval_crops else None,
            batch_size=FLAGS.batch_size,
        )
    except (ValueError, atomic.NoSpaceError) as e:
        sys.exit(f"evaluate: {e}")
    _print_result(result, spec.class_names)


if __name__ == "__main__":
    cli.run(main, define_flags)
