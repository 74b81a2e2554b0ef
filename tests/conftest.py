"""Shared fixtures; and tvn_tf imported before any test module imports TensorFlow.

The package's start-up (tvn_tf/platform_setup.py) caps oneDNN below AMX where AMX
traps, as every binary does; it can only do so before TensorFlow loads.
"""

import pytest

import tvn_tf  # noqa: F401
from tvn_tf.data import demo_data, prepare


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A prepared 4-class, 5-group demo dataset (TFRecords) and its video tree."""
    root = tmp_path_factory.mktemp("tiny_demo")
    videos, records = str(root / "videos"), str(root / "records")
    demo_data.make_demo_data(
        videos,
        num_groups=5,
        clips_per_group=3,
        num_frames=16,
        num_classes=4,
        seed=0,
        workers=1,
        progress=False,
    )
    prepare.prepare_dataset(videos, records, short_side=64, workers=1, progress=False)
    return {"videos": videos, "records": records}
