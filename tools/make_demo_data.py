"""Generates the synthetic demo dataset in the UCF50 layout and codec.

    python tools/make_demo_data.py --output_dir=/tmp/tvn_demo

    python tools/make_demo_data.py --preset=motion --output_dir=/tmp/tvn_motion

Writes `OUTPUT_DIR/<Class>/v_<Class>_gNN_cMM.avi` (MPEG-4 Part 2 in AVI, tag
XVID, 320x240, 25 fps). The default preset, `demo`, is 10 classes x 7 groups x
4 clips of 50 frames, in well under a minute on 2 cores; it is easy (a 2-frame
model all but solves it). `motion` is 20 classes x 12 groups x 3 clips of 40
frames that only motion tells apart, under nuisances, made in a few minutes.
See `tvn_tf/data/demo_data.py`.
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root
from tvn_tf.data import demo_data  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Dataset root to write.", required=True)
_PRESET = flags.DEFINE_enum(
    "preset",
    "demo",
    list(demo_data.PRESETS),
    "demo: 10 easy classes; motion: 20 classes that only motion tells apart, with "
    "nuisances (moving camera, clutter, lighting, distractors, occlusion).",
)
_NUM_GROUPS = flags.DEFINE_integer("num_groups", None, "Groups; default: the preset's (7, 12).")
_CLIPS = flags.DEFINE_integer(
    "clips_per_group", None, "Clips per group and class; default: the preset's (4, 3)."
)
_NUM_FRAMES = flags.DEFINE_integer(
    "num_frames", None, "Frames per video; default: the preset's (50, 40)."
)
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "Classes; default: all of the preset's.")
_WIDTH = flags.DEFINE_integer("width", demo_data.WIDTH, "Frame width (motion preset only).")
_HEIGHT = flags.DEFINE_integer("height", demo_data.HEIGHT, "Frame height (motion preset only).")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed; same seed, same files.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Processes; 0 uses every core.")


def main(argv):
    del argv
    try:
        count = demo_data.make_demo_data(
            _OUTPUT_DIR.value,
            preset=_PRESET.value,
            num_groups=_NUM_GROUPS.value,
            clips_per_group=_CLIPS.value,
            num_frames=_NUM_FRAMES.value,
            num_classes=_NUM_CLASSES.value,
            width=_WIDTH.value,
            height=_HEIGHT.value,
            seed=_SEED.value,
            workers=_WORKERS.value,
        )
    except (ValueError, OSError) as e:
        sys.exit(f"make_demo_data: {e}")
    print(f"Wrote {count} videos to {_OUTPUT_DIR.value}.")


if __name__ == "__main__":
    app.run(main)
