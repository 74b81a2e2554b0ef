"""The clips an export calibrates, selects and measures parity on (`tvn_tf.deploy.clips`)."""

import numpy as np

from tvn_tf import model_dir as model_dir_lib
from tvn_tf.deploy import clips as clips_lib


def test_calibration_clips_are_spread_over_classes_not_the_first_videos(
    trained_model_dir, export_data
):
    from tvn_tf.data import dataset as data_lib

    dataset = data_lib.load_dataset(data_lib.DataConfig(data_dir=export_data))
    spec = model_dir_lib.read_spec(trained_model_dir)
    # Group 2: 3 classes x 2 videos, in class order; 3 clips must cover all 3 classes.
    clips, labels = clips_lib.spread_clips(dataset, (2,), spec, 3, clips_per_video=1)
    assert clips.shape == (3, 4, 32, 32, 3)
    assert sorted(labels.tolist()) == [0, 1, 2]


def test_auto_denylist_is_judged_on_clips_the_calibration_did_not_use(
    trained_model_dir, export_data
):
    from tvn_tf.data import dataset as data_lib

    dataset = data_lib.load_dataset(data_lib.DataConfig(data_dir=export_data, fold=1))
    spec = model_dir_lib.read_spec(trained_model_dir)
    options = dict(
        calibration_clips=6,
        parity_clips=2,
        eval_clips=2,
        augmented_calibration_clips=4,
        selection=True,
    )
    loaded = clips_lib.load_clips(dataset, spec, **options)
    assert loaded.selection.shape == (6, 4, 32, 32, 3) and loaded.num_augmented == 4
    assert loaded.calibration.shape == (10, 4, 32, 32, 3)
    calibration = {clip.tobytes() for clip in loaded.calibration}
    assert len(calibration) == 10
    assert not calibration & {clip.tobytes() for clip in loaded.selection}
    # The augmented clips are drawn as training draws them, the same ones each export.
    augmented = loaded.calibration[6:]
    np.testing.assert_array_equal(
        augmented, clips_lib.load_clips(dataset, spec, **options).calibration[6:]
    )
    spread = {clip.tobytes() for clip in loaded.calibration[:6]}
    assert not spread & {clip.tobytes() for clip in augmented}
    # As many selection clips as asked for, whatever the calibration's count.
    fewer = clips_lib.load_clips(dataset, spec, **{**options, "selection_clips": 3})
    assert fewer.selection.shape[0] == 3 and fewer.calibration.shape[0] == 10
    assert not {clip.tobytes() for clip in fewer.calibration} & {
        clip.tobytes() for clip in fewer.selection
    }
    # Without auto (or without an int8 variant) no selection clips are decoded.
    fixed = dict(calibration_clips=6, parity_clips=2, eval_clips=2, selection=False)
    assert clips_lib.load_clips(dataset, spec, **fixed).selection is None
