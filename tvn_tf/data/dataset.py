"""The data front door: a dataset's config, its classes, groups and split, and its clips.

Training, evaluation, export calibration, the search and the benchmarks read
data through here. It works on both forms `tvn_tf.data.pipeline` reads: a
folder prepared by `tools/prepare_ucf50.py` (TFRecords, `prepare.CLASSES`
and `prepare.MANIFEST`) and a raw UCF50-style `.avi` tree; `is_prepared` is
the one place that chooses between them, and `make_clips` the one call that
builds the matching pipeline.

    dataset = load_dataset(DataConfig("/data/ucf50_tfrecords", split="logo", fold=1))
    clips = make_clips(dataset, dataset.split.test, spec.input, training=False, batch_size=32)
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os

import tensorflow as tf

from tvn_tf import errors
from tvn_tf.data import layout, pipeline, prepare, splits
from tvn_tf.models.model_input import ModelInput

DATA_FORMATS = ("auto", "tfrecord", "avi")
SPLITS = ("logo", "kfold", "all")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the videos are and how they split.

    Attributes:
      data_dir: A prepared TFRecord folder or a UCF50-style `.avi` tree.
      data_format: "tfrecord", "avi", or "auto" (TFRecords if present).
      split: "logo" (leave one group out: test on group `fold`), "kfold"
        (group-wise K-fold: test on block `fold` of `num_folds`), or "all"
        (train on every group; no test set).
      fold: Which fold, 1-based.
      num_folds: K for "kfold".
      num_validation_groups: Whole training groups held out for validation
        (model selection and the best checkpoint).
    """

    data_dir: str
    data_format: str = "auto"
    split: str = "logo"
    fold: int = 1
    num_folds: int = 5
    num_validation_groups: int = 0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A scanned dataset: classes, videos per group, and its split."""

    config: DataConfig
    class_names: tuple[str, ...]
    videos_per_group: dict[int, int]
    split: splits.GroupSplit

    def num_videos(self, groups) -> int:
        return sum(self.videos_per_group.get(g, 0) for g in groups)


def is_prepared(config: DataConfig) -> bool:
    """Whether the data is read from TFRecords (else decoded from the .avi tree).

    "auto" takes TFRecords when the folder holds any shard: the one place the
    TFRecord-or-AVI choice is made.
    """
    if config.data_format == "auto":
        return bool(pipeline.tfrecord_files(config.data_dir))
    return config.data_format == "tfrecord"


def read_classes(data_dir: str) -> list[str]:
    """The class list saved by preparation (`prepare.CLASSES`), index = label."""
    with open(os.path.join(data_dir, prepare.CLASSES)) as f:
        return json.load(f)


def _videos_per_group(config: DataConfig) -> tuple[tuple[str, ...], dict[int, int]]:
    counts = collections.Counter()
    if is_prepared(config):
        manifest = os.path.join(config.data_dir, prepare.MANIFEST)
        if not os.path.exists(manifest):
            raise ValueError(
                f"--data_dir={config.data_dir}: no {prepare.MANIFEST}; expected a "
                "folder written by tools/prepare_ucf50.py (or --data_format=avi)."
            )
        with open(manifest) as f:
            for line in f:
                entry = json.loads(line)
                if entry.get("status") == "ok" and entry.get("group") is not None:
                    counts[int(entry["group"])] += 1
        classes = tuple(read_classes(config.data_dir))
    else:
        scan = layout.scan_videos(config.data_dir)
        counts.update(v.group for v in scan.videos)
        classes = tuple(scan.classes)
    return classes, dict(sorted(counts.items()))


def load_dataset(config: DataConfig) -> Dataset:
    """Scans the data folder and splits it by group.

    Raises:
      ValueError: naming the flag at fault: a missing or empty `--data_dir`,
        an unknown format or split, a fold that does not exist.
    """
    if config.data_format not in DATA_FORMATS:
        raise ValueError(
            f"--data_format={config.data_format!r}; expected one of {', '.join(DATA_FORMATS)}."
        )
    if config.split not in SPLITS:
        raise ValueError(f"--split={config.split!r}; expected one of {', '.join(SPLITS)}.")
    if not os.path.isdir(config.data_dir):
        raise ValueError(f"--data_dir={config.data_dir}: no such directory.")
    classes, per_group = _videos_per_group(config)
    if not per_group or not classes:
        raise ValueError(
            f"--data_dir={config.data_dir}: no videos found; expected a folder "
            "from tools/prepare_ucf50.py or a tree <Class>/v_<Class>_gNN_cMM.avi."
        )
    if config.split == "all" and config.num_validation_groups:
        raise ValueError(
            f"--num_validation_groups={config.num_validation_groups} with --split=all: that "
            "split holds no groups out; use --split=logo or kfold, or drop the flag."
        )
    num_groups = max(per_group)
    try:
        if config.split == "logo":
            split = splits.leave_one_group_out(
                config.fold, num_groups, config.num_validation_groups
            )
        elif config.split == "kfold":
            split = splits.group_k_fold(
                config.fold, config.num_folds, num_groups, config.num_validation_groups
            )
        else:
            split = splits.GroupSplit(train=tuple(per_group), validation=(), test=())
    except ValueError as e:
        raise ValueError(
            f"--split={config.split} over the {num_groups} groups of --data_dir: {e}"
        ) from None
    dataset = Dataset(config, classes, per_group, split)
    if dataset.num_videos(split.train) == 0:
        raise ValueError(
            f"--fold={config.fold}: no training videos left in --data_dir={config.data_dir}."
        )
    # Groups numbered past a gap have no videos: found here, not after training.
    for side in ("test", "validation"):
        groups = getattr(split, side)
        if groups and dataset.num_videos(groups) == 0:
            raise ValueError(
                f"--split={config.split} --fold={config.fold}: the {side} groups "
                f"{list(groups)} have no videos in --data_dir={config.data_dir} (it has "
                f"groups {list(per_group)})."
            )
    return dataset


def check_shards(dataset: Dataset, groups) -> None:
    """Reads the TFRecord shards of `groups` once, checksums included.

    A damaged shard would otherwise stop a run with TensorFlow's DataLossError,
    which does not name the file, and only when the pipeline reaches it (for the
    test groups: after all of training). Reading is sequential and cheap next to
    training. Nothing to do for `.avi` trees.

    Raises:
      ValueError: naming the first damaged shard.
    """
    if not is_prepared(dataset.config):
        return
    for path in pipeline.tfrecord_files(dataset.config.data_dir, groups):
        try:
            tf.data.TFRecordDataset(path).reduce(0, lambda n, _: n + 1)
        except tf.errors.DataLossError as e:
            raise ValueError(
                f"{path}: damaged TFRecord shard ({errors.first_line(e)}); delete "
                "it and rerun tools/prepare_ucf50.py on the videos to write it again."
            ) from None


def make_clips(
    dataset: Dataset,
    groups,
    model_input: ModelInput,
    *,
    training: bool,
    batch_size: int,
    seed: int | None = None,
    num_clips: int = 1,
    num_crops: int = 1,
    input_context=None,
    with_video_ids: bool = False,
    deterministic: bool | None = None,
) -> tf.data.Dataset:
    """The clip pipeline over `groups`, sampled and sized for `model_input`, from either source.

    TFRecords when the data is prepared (`is_prepared`), else the `.avi` tree
    decoded on the fly; the elements are the same. `model_input` is a model's
    `ModelInput` (`Architecture.input`, `ModelSpec.input`). `deterministic`
    (`train --deterministic`) keeps one seed's clips in one order; None leaves
    evaluation ordered and training free.

    See `tvn_tf.data.pipeline.make_tfrecord_dataset` for the other arguments.
    """
    config = dataset.config
    kwargs = dict(
        training=training,
        num_frames=model_input.num_frames,
        frame_stride=model_input.frame_stride,
        image_size=model_input.image_size,
        batch_size=batch_size,
        groups=tuple(groups),
        seed=seed,
        num_clips=num_clips,
        num_crops=num_crops,
        input_context=input_context,
        with_video_ids=with_video_ids,
        deterministic=deterministic,
    )
    if is_prepared(config):
        return pipeline.make_tfrecord_dataset(config.data_dir, **kwargs)
    return pipeline.make_avi_dataset(config.data_dir, classes=dataset.class_names, **kwargs)
