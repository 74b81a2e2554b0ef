"""Measures the input pipeline for TVN-1 training (2 frames, stride 4, 224x224, augmented).

    python tools/bench_input.py                      # demo data, made in a temporary folder
    python tools/bench_input.py --data_dir=/data/ucf50_tfrecords --video_dir=/data/UCF50

Prints training clips per second from the TFRecords, the rate of pure
`tf.io.decode_jpeg` on the same sampled frames on the same cores (the bound
the pipeline is held to), their ratio, and the clips per second of the direct
`.avi` mode. It also prints the rate of decoding plus the bilinear resize to
224x224 alone, with no reading, parsing, augmentation or normalisation: the
most a pipeline that resizes with TF on the CPU can reach, whatever its format.
The last line is one JSON object:
{"tfrecord_clips_per_s", "jpeg_decode_clips_per_s", "share_of_decode_bound",
 "avi_clips_per_s", "tfrecord_over_avi", "peak_rss_mb"}.
"""

import json
import os
import resource
import sys
import tempfile
import time

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root
from tvn_tf import cli  # noqa: E402

cli.start()

import numpy as np  # noqa: E402  (after cli.start)
import tensorflow as tf  # noqa: E402

from tvn_tf.data import dataset as data_lib  # noqa: E402
from tvn_tf.data import decoding, demo_data, pipeline, prepare, preprocessing, records  # noqa: E402
from tvn_tf.data import sampling  # noqa: E402
from tvn_tf.models.model_input import ModelInput  # noqa: E402
from tvn_tf.training import config as config_lib  # noqa: E402

# TVN-1's input (the model library's config; repeated here to keep the tool standalone).
NUM_FRAMES, FRAME_STRIDE, IMAGE_SIZE = 2, 4, 224
ROUNDS = 3
FLAGS = flags.FLAGS
_TRAIN_DEFAULTS = config_lib.TrainConfig(model_dir="")


def define_flags() -> None:
    """The tool's flags; --train_clips_per_video defaults to training's (`TrainConfig`)."""
    flags.DEFINE_string(
        "data_dir",
        None,
        "TFRecords from prepare_ucf50; default: demo data made and prepared in a temporary folder.",
    )
    flags.DEFINE_string(
        "video_dir",
        None,
        "The .avi tree of --data_dir, for the "
        "direct mode (skipped when --data_dir is given without it).",
    )
    flags.DEFINE_integer("batch_size", 32, "Clips per batch.")
    flags.DEFINE_integer(
        "train_clips_per_video",
        _TRAIN_DEFAULTS.train_clips_per_video,
        "Training clips per video read, in both modes (as tvn_tf.train's flag of that name).",
        lower_bound=1,
    )
    # Its old name, which means evaluation clips in tvn_tf.export.
    flags.DEFINE_integer(
        "clips_per_video", None, "Deprecated: the old name of --train_clips_per_video."
    )
    flags.DEFINE_integer(
        "demo_frames",
        200,
        "Frames per generated demo video (without --data_dir). UCF50 averages ~199: the direct "
        "AVI mode decodes whole videos, so its rate depends on their length.",
        lower_bound=16,
    )
    flags.DEFINE_float(
        "seconds",
        15.0,
        f"Measuring time per pipeline, split into {ROUNDS} alternating windows (median taken).",
    )


def clips_per_second(
    dataset: tf.data.Dataset, batch_size: int, seconds: float, warmup_batches: int = 5
) -> float:
    """Clips per second of a dataset of batches, after a warm-up, over ~`seconds`."""
    iterator = iter(dataset)
    for _ in range(warmup_batches):
        next(iterator)
    batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        batches += 1
    return batches * batch_size / (time.perf_counter() - start)


_TVN1_INPUT = ModelInput(NUM_FRAMES, FRAME_STRIDE, IMAGE_SIZE)  # What make_clips samples for.


def training_clips(
    data_dir: str, data_format: str, *, batch_size: int, clips_per_video: int
) -> tf.data.Dataset:
    """Training input as `tvn_tf.train` builds it, from one source named by `data_format`.

    Goes through the data front door (`tvn_tf.data.dataset.make_clips`), so the
    bench measures exactly what training reads, over every group.
    """
    config = data_lib.DataConfig(data_dir, data_format=data_format, split="all")
    dataset = data_lib.load_dataset(config)
    return data_lib.make_clips(
        dataset,
        dataset.split.train,
        _TVN1_INPUT,
        training=True,
        batch_size=batch_size,
        num_clips=clips_per_video,
        seed=0,
    )


def sampled_jpegs(data_dir: str, clips: int = 4096, seed: int = 0) -> tf.Tensor:
    """JPEGs of training clips, sampled and read by the pipeline's own reader: string [clips, T]."""
    draw = sampling.ClipDraw(True, NUM_FRAMES, FRAME_STRIDE, num_clips=1, seed=seed)
    read = decoding.record_reader(groups=None, num_clips=1)
    ds = tf.data.Dataset.zip(
        (
            tf.data.TFRecordDataset(pipeline.tfrecord_files(data_dir)).repeat(),
            tf.data.Dataset.random(seed=seed).batch(2),
        )
    )
    return next(iter(ds.map(lambda r, s: read(r, s, draw.indices)[0][0]).batch(clips)))


def decode_bound_dataset(
    jpegs: tf.Tensor, batch_size: int, resize: bool = False
) -> tf.data.Dataset:
    """Only `tf.io.decode_jpeg` of in-memory JPEGs, with the pipeline's parallelism.

    With `resize`, also the pipeline's bilinear resize of the frames to
    `IMAGE_SIZE`: the floor of work for a pipeline that resizes on the CPU.
    """

    def decode(clip_jpegs):
        frames = decoding.decode_jpegs(clip_jpegs, NUM_FRAMES)
        return preprocessing.resize_frames(frames, IMAGE_SIZE) if resize else frames

    return (
        tf.data.Dataset.from_tensor_slices(jpegs)
        .repeat()
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def bench_input(
    data_dir: str | None,
    video_dir: str | None,
    *,
    batch_size: int = 32,
    seconds: float = 15.0,
    demo_frames: int = 200,
    clips_per_video: int = 1,
) -> dict:
    """Runs the three measurements; makes and prepares demo data if `data_dir` is None."""
    with tempfile.TemporaryDirectory(prefix="bench_input_") as tmp:
        if data_dir is None:
            video_dir, data_dir = os.path.join(tmp, "videos"), os.path.join(tmp, "tfrecords")
            demo_data.make_demo_data(video_dir, num_frames=demo_frames)
            prepare.prepare_dataset(video_dir, data_dir)
        common = dict(batch_size=batch_size, clips_per_video=clips_per_video)
        tfrecord, bound, resize = _tfrecord_rates(data_dir, common, seconds)
        _print_rates(tfrecord, bound, resize, clips_per_video)
        avi = None
        if video_dir:
            avi = clips_per_second(
                training_clips(video_dir, "avi", **common),
                batch_size,
                seconds,
                warmup_batches=1,
            )
            print(
                f"Direct AVI mode: {avi:.1f} clips/s (TFRecord {tfrecord / avi:.1f}x)", flush=True
            )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "tfrecord_clips_per_s": round(tfrecord, 1),
        "jpeg_decode_clips_per_s": round(bound, 1),
        "share_of_decode_bound": round(tfrecord / bound, 3),
        "avi_clips_per_s": None if avi is None else round(avi, 1),
        "tfrecord_over_avi": None if avi is None else round(tfrecord / avi, 1),
        "peak_rss_mb": round(peak_mb),
    }


def _tfrecord_rates(data_dir: str, common: dict, seconds: float) -> tuple[float, float, float]:
    """Clips per second of the TFRecord pipeline, of decoding alone, of decoding and resizing.

    Alternates short windows and takes medians: shared machines drift between runs.
    """
    batch_size = common["batch_size"]
    jpegs = sampled_jpegs(data_dir)
    rates = {"tfrecord": [], "bound": [], "resize": []}
    for _ in range(ROUNDS):
        rates["tfrecord"].append(
            clips_per_second(
                training_clips(data_dir, "tfrecord", **common), batch_size, seconds / ROUNDS
            )
        )
        for key, resize in (("bound", False), ("resize", True)):
            rates[key].append(
                clips_per_second(
                    decode_bound_dataset(jpegs, batch_size, resize), batch_size, seconds / ROUNDS
                )
            )
    return tuple(float(np.median(rates[k])) for k in rates)


def _print_rates(tfrecord: float, bound: float, resize: float, clips_per_video: int) -> None:
    print(
        f"TFRecord pipeline ({clips_per_video} clip(s) per video read): {tfrecord:.1f} clips/s",
        flush=True,
    )
    print(
        f"Pure tf.io.decode_jpeg of the same frames: {bound:.1f} clips/s "
        f"(pipeline at {tfrecord / bound:.0%} of it)",
        flush=True,
    )
    print(
        f"Decode + resize to {IMAGE_SIZE}x{IMAGE_SIZE} only: {resize:.1f} clips/s "
        f"({resize / bound:.0%} of the decode bound: the ceiling of a pipeline that "
        f"resizes with TF on the CPU; the pipeline is at {tfrecord / resize:.0%} of it)",
        flush=True,
    )


def main(argv):
    del argv
    if FLAGS.data_dir and not pipeline.tfrecord_files(FLAGS.data_dir):
        sys.exit(
            f"bench_input: --data_dir={FLAGS.data_dir!r} holds no "
            f"{records.SHARD_SUFFIX} files; run tools/prepare_ucf50.py first."
        )
    clips_per_video = cli.renamed(
        "bench_input",
        "clips_per_video",
        "train_clips_per_video",
        FLAGS.clips_per_video,
        FLAGS.train_clips_per_video,
    )
    result = bench_input(
        FLAGS.data_dir,
        FLAGS.video_dir,
        batch_size=FLAGS.batch_size,
        seconds=FLAGS.seconds,
        demo_frames=FLAGS.demo_frames,
        clips_per_video=clips_per_video,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main, define_flags)
