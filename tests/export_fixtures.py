"""One small trained-looking model, its demo data and its export, shared by the export,
benchmark and predict tests (made once per test process: exporting takes ~40 s).
"""

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np

from tests.isolated import ROOT, run_module

ALL_OPS = "tests/testdata/all_ops_tvn.json"


@functools.cache
def workdir() -> str:
    path = tempfile.mkdtemp(prefix="tvn_export_tests_")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def demo_data() -> str:
    """3 classes x 2 groups x 2 clips of 12 frames, UCF50 layout (AVI, 320x240)."""
    from tvn_tf.data import demo_data as demo

    path = os.path.join(workdir(), "demo")
    demo.make_demo_data(
        path,
        num_groups=2,
        clips_per_group=2,
        num_frames=12,
        num_classes=3,
        workers=1,
        progress=False,
    )
    return path


@functools.cache
def model_dir() -> str:
    """A model dir (all-op-types TVN, 4 frames of 32x32) whose checkpoint has non-trivial weights.

    A few SGD steps on random clips move every weight and batch-norm statistic
    off its initial value, so that the parity figures compare real numbers.
    """
    import keras
    import tensorflow as tf

    from tvn_tf import model_dir as model_dir_lib
    from tvn_tf.data import layout
    from tvn_tf.models import architecture as arch_lib

    path = os.path.join(workdir(), "run")
    arch = arch_lib.load_architecture_json(os.path.join(ROOT, ALL_OPS))
    spec = model_dir_lib.ModelSpec(
        name=arch.name,
        architecture=arch.to_json(),
        class_names=layout.scan_videos(demo_data()).classes,
    )
    model_dir_lib.write_spec(path, spec)
    keras.utils.set_random_seed(2)
    model = spec.build()
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    model.fit(
        rng.uniform(-1, 1, (16, 4, 32, 32, 3)).astype("float32"),
        np.arange(16) % 3,
        batch_size=8,
        epochs=2,
        verbose=0,
    )
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), os.path.join(path, "checkpoints"), max_to_keep=1
    ).save()
    return path


@functools.cache
def export_dir() -> str:
    """`python -m tvn_tf.export` of `model_dir()` on `demo_data()` (test group 1)."""
    path = os.path.join(workdir(), "export")
    result = run_module(
        "tvn_tf.export",
        f"--model_dir={model_dir()}",
        f"--output_dir={path}",
        f"--data_dir={demo_data()}",
        "--split=logo",
        "--fold=1",
        "--calibration_clips=16",
        "--clips_per_video=3",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return path
