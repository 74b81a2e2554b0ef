"""Turns a UCF50-style video tree into sharded TFRecords of SequenceExamples.

    python tools/prepare_ucf50.py --input_dir=/data/UCF50 --output_dir=/data/ucf50_tfrecords

Writes one `SequenceExample` per video (one JPEG per frame; schema in
`tvn_tf/data/records.py` and docs/data.md), sharded by group, plus
`classes.json` and `manifest.jsonl` (one line per file found, with the reason
for every skipped one). Uses every core by default. Rerunning it resumes:
finished shards are kept. Nothing is written under the input folder.
"""

import os
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root
from tvn_tf import cli  # noqa: E402

cli.start()

from tvn_tf.atomic import NoSpaceError  # noqa: E402  (after cli.start)
from tvn_tf.data import layout, prepare, records  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The tool's flags; defaults are `prepare.prepare_dataset`'s."""
    flags.DEFINE_string(
        "input_dir",
        None,
        "Root of the video tree (INPUT_DIR/<Class>/v_<Class>_gNN_cMM.avi).",
        required=True,
    )
    flags.DEFINE_string("output_dir", None, "Folder for the TFRecords.", required=True)
    flags.DEFINE_integer(
        "short_side",
        prepare.DEFAULT_SHORT_SIDE,
        "Resize frames to this short side; 0 keeps the size.",
    )
    flags.DEFINE_integer("workers", 0, "Worker processes; 0 uses every core.")
    flags.DEFINE_integer(
        "videos_per_shard", prepare.DEFAULT_VIDEOS_PER_SHARD, "Videos per shard file."
    )
    flags.DEFINE_integer(
        "jpeg_quality", records.DEFAULT_JPEG_QUALITY, "JPEG quality of stored frames."
    )
    flags.DEFINE_list(
        "classes",
        None,
        "Class list; default: the class folders found. 'ucf50' for the 50 UCF50 classes.",
    )


def main(argv):
    del argv
    classes = FLAGS.classes
    if classes == ["ucf50"]:
        classes = list(layout.UCF50_CLASSES)
    try:
        prepare.prepare_dataset(
            FLAGS.input_dir,
            FLAGS.output_dir,
            short_side=FLAGS.short_side,
            workers=FLAGS.workers,
            videos_per_shard=FLAGS.videos_per_shard,
            jpeg_quality=FLAGS.jpeg_quality,
            classes=classes,
        )
    except NoSpaceError as e:
        sys.exit(f"prepare_ucf50: {e}; finished shards are kept: free space and rerun to resume.")
    except (ValueError, OSError) as e:
        sys.exit(f"prepare_ucf50: {e}")


if __name__ == "__main__":
    cli.run(main, define_flags)
