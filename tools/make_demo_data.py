"""Generates the synthetic demo dataset in the UCF50 layout and codec.

    python tools/make_demo_data.py --output_dir=/tmp/tvn_demo

Writes `OUTPUT_DIR/<Class>/v_<Class>_gNN_cMM.avi` (MPEG-4 Part 2 in AVI, tag
XVID, 320x240, 25 fps): 10 classes x 7 groups x 4 clips of 50 frames by
default, in well under a minute on 2 cores. See `tvn_tf/data/demo_data.py`.
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root
from tvn_tf.data import demo_data  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Dataset root to write.", required=True)
_NUM_GROUPS = flags.DEFINE_integer("num_groups", demo_data.DEFAULT_NUM_GROUPS, "Groups.")
_CLIPS = flags.DEFINE_integer(
    "clips_per_group", demo_data.DEFAULT_CLIPS_PER_GROUP, "Clips per group and class."
)
_NUM_FRAMES = flags.DEFINE_integer("num_frames", demo_data.DEFAULT_NUM_FRAMES, "Frames per video.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", len(demo_data.DEMO_CLASSES), "Classes.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed; same seed, same files.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Processes; 0 uses every core.")


def main(argv):
    del argv
    try:
        count = demo_data.make_demo_data(
            _OUTPUT_DIR.value,
            num_groups=_NUM_GROUPS.value,
            clips_per_group=_CLIPS.value,
            num_frames=_NUM_FRAMES.value,
            num_classes=_NUM_CLASSES.value,
            seed=_SEED.value,
            workers=_WORKERS.value,
        )
    except (ValueError, OSError) as e:
        sys.exit(f"make_demo_data: {e}")
    print(f"Wrote {count} videos to {_OUTPUT_DIR.value}.")


if __name__ == "__main__":
    app.run(main)
