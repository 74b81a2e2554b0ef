"""Generates the synthetic demo dataset in the UCF50 layout and codec.

    python tools/make_demo_data.py --output_dir=/tmp/tvn_demo

    python tools/make_demo_data.py --preset=motion --output_dir=/tmp/tvn_motion

Writes `OUTPUT_DIR/<Class>/v_<Class>_gNN_cMM.avi` (MPEG-4 Part 2 in AVI, tag
XVID, 320x240, 25 fps). The default preset, `demo`, is 10 classes x 7 groups x
4 clips of 50 frames, in well under a minute on 2 cores; it is easy (a 2-frame
model all but solves it). `motion` is 20 classes x 12 groups x 3 clips of 40
frames that only motion tells apart, under nuisances, made in a few minutes.
See `tvn_tf/data/demo_data.py` and `tvn_tf/data/motion_data.py`.

It loads neither TensorFlow nor Keras (the data modules it uses are numpy and
PyAV only), so it starts in a second.
"""

import os
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root
from tvn_tf import cli  # noqa: E402

cli.start()

from tvn_tf.data import demo_data  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The tool's flags; defaults are `demo_data.make_demo_data`'s."""
    flags.DEFINE_string("output_dir", None, "Dataset root to write.", required=True)
    flags.DEFINE_enum(
        "preset",
        "demo",
        list(demo_data.PRESETS),
        "demo: 10 easy classes; motion: 20 classes that only motion tells apart, with "
        "nuisances (moving camera, clutter, lighting, distractors, occlusion).",
    )
    flags.DEFINE_integer("num_groups", None, "Groups; default: the preset's (7, 12).")
    flags.DEFINE_integer(
        "clips_per_group", None, "Clips per group and class; default: the preset's (4, 3)."
    )
    flags.DEFINE_integer("num_frames", None, "Frames per video; default: the preset's (50, 40).")
    flags.DEFINE_integer("num_classes", None, "Classes; default: all of the preset's.")
    flags.DEFINE_integer("width", demo_data.WIDTH, "Frame width (motion preset only).")
    flags.DEFINE_integer("height", demo_data.HEIGHT, "Frame height (motion preset only).")
    flags.DEFINE_integer("seed", 0, "Random seed; same seed, same files.")
    flags.DEFINE_integer("workers", 0, "Processes; 0 uses every core.")


def main(argv):
    del argv
    try:
        count = demo_data.make_demo_data(
            FLAGS.output_dir,
            preset=FLAGS.preset,
            num_groups=FLAGS.num_groups,
            clips_per_group=FLAGS.clips_per_group,
            num_frames=FLAGS.num_frames,
            num_classes=FLAGS.num_classes,
            width=FLAGS.width,
            height=FLAGS.height,
            seed=FLAGS.seed,
            workers=FLAGS.workers,
        )
    except (ValueError, OSError) as e:
        sys.exit(f"make_demo_data: {e}")
    print(f"Wrote {count} videos to {FLAGS.output_dir}.")


if __name__ == "__main__":
    cli.run(main, define_flags)
