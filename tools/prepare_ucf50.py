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

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root
from tvn_tf.atomic import NoSpaceError  # noqa: E402
from tvn_tf.data import prepare  # noqa: E402

_INPUT_DIR = flags.DEFINE_string(
    "input_dir",
    None,
    "Root of the video tree (INPUT_DIR/<Class>/v_<Class>_gNN_cMM.avi).",
    required=True,
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder for the TFRecords.", required=True)
_SHORT_SIDE = flags.DEFINE_integer(
    "short_side", prepare.DEFAULT_SHORT_SIDE, "Resize frames to this short side; 0 keeps the size."
)
_WORKERS = flags.DEFINE_integer("workers", 0, "Worker processes; 0 uses every core.")
_VIDEOS_PER_SHARD = flags.DEFINE_integer(
    "videos_per_shard", prepare.DEFAULT_VIDEOS_PER_SHARD, "Videos per shard file."
)
_JPEG_QUALITY = flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality of stored frames.")
_CLASSES = flags.DEFINE_list(
    "classes",
    None,
    "Class list; default: the class folders found. 'ucf50' for the 50 UCF50 classes.",
)


def main(argv):
    del argv
    classes = _CLASSES.value
    if classes == ["ucf50"]:
        from tvn_tf.data import layout

        classes = list(layout.UCF50_CLASSES)
    try:
        prepare.prepare_dataset(
            _INPUT_DIR.value,
            _OUTPUT_DIR.value,
            short_side=_SHORT_SIDE.value,
            workers=_WORKERS.value,
            videos_per_shard=_VIDEOS_PER_SHARD.value,
            jpeg_quality=_JPEG_QUALITY.value,
            classes=classes,
        )
    except NoSpaceError as e:
        sys.exit(f"prepare_ucf50: {e}; finished shards are kept: free space and rerun to resume.")
    except (ValueError, OSError) as e:
        sys.exit(f"prepare_ucf50: {e}")


if __name__ == "__main__":
    app.run(main)
