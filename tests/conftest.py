"""The fixtures every test file shares (pytest finds them here: no import needed).

    run_module        `tests.isolated.run_module`: a binary, script or snippet in
                      a child process, with the one shared environment
    tiny_data         a prepared 4-class, 5-group demo dataset and its video tree
    export_data       3 classes x 2 groups x 2 clips, UCF50 layout (AVI)
    trained_model_dir a run folder (all-op-types TVN, 4 frames of 32x32) whose
                      checkpoint has non-trivial weights
    export_dir        `python -m tvn_tf.export` of that run on that data
    keras_model       that run's Keras model and spec (per test file)

Session-scoped ones are made once per run: the first worker process (pytest-xdist)
to need one builds it under a lock, the others wait and reuse it (`_built_once`;
exporting takes a minute or two). Tests only read them.
Plain helpers stay in modules: `tests/isolated.py` (child processes) and
`tests/video_fixtures.py` (test videos).

tvn_tf is imported here before any test module imports TensorFlow: the
package's start-up (tvn_tf/platform_setup.py) caps oneDNN below AMX where AMX
traps, as every binary does; it can only do so before TensorFlow loads.
"""

import fcntl
import os
import shutil
from collections.abc import Callable

import numpy as np
import pytest

import tvn_tf  # noqa: F401
from tests import isolated
from tvn_tf.data import demo_data, prepare

ALL_OPS = "tests/testdata/all_ops_tvn.json"

# Files whose tests train, export, prepare, search or start other backends in
# child processes (or need the exported model's fixture): marked `slow`. The
# quick tier, `pytest tests -m "not slow"`, runs the rest (CONTRIBUTING.md); the
# full suite runs everything.
SLOW_FILES = {
    "test_backends.py",
    "test_bench_against_tvn1.py",
    "test_bench_proxy.py",
    "test_bench_search.py",
    "test_benchmark.py",
    "test_checkpoint_robustness.py",
    "test_clips.py",
    "test_data_prepare.py",
    "test_demo.py",
    "test_export.py",
    "test_export_robustness.py",
    "test_loading.py",
    "test_model_info.py",
    "test_parity.py",
    "test_platform_setup.py",
    "test_predict.py",
    "test_predict_robustness.py",
    "test_quantization.py",
    "test_recipes.py",
    "test_search.py",
    "test_search_postgres.py",
    "test_search_robustness.py",
    "test_train.py",
    "test_train_robustness.py",
}


# The files that take longest, longest first (minutes on a 2-core machine, mostly
# child processes that train, export, search or run other backends). The
# workers take whole files in collection order (`--dist loadfile`), so these go
# first and the quick files fill in at the end: collected alphabetically, a long
# file that came last kept one worker busy for minutes after the others were done.
LONGEST_FIRST = (
    "test_backends.py",
    "test_train.py",
    "test_recipes.py",
    "test_search.py",
    "test_export.py",
    "test_train_robustness.py",
    "test_search_postgres.py",
    "test_platform_setup.py",
    "test_quantization.py",
    "test_checkpoint_robustness.py",
    "test_search_robustness.py",
    "test_demo.py",
    "test_data_prepare.py",
    "test_export_robustness.py",
    "test_model.py",
    "test_model_info.py",
    "test_benchmark.py",
    "test_bench_search.py",
    "test_bench_proxy.py",
    "test_bench_against_tvn1.py",
    "test_predict.py",
)


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # Stable: in-file order kept.


def _make_demo(path: str, **sizes) -> None:
    """The demo dataset at a test's size, in this process (no worker pool)."""
    demo_data.make_demo_data(path, workers=1, progress=False, **sizes)


def _built_once(tmp_path_factory, worker_id: str, name: str, build: Callable[[str], None]) -> str:
    """The folder `build(path)` writes, built by one worker process of this run for all.

    Worker processes share their base folder's parent. The first to get the
    lock builds; a folder without its `.done` mark (a build that failed) is
    built again.
    """
    base = tmp_path_factory.getbasetemp()
    root = base if worker_id == "master" else base.parent  # "master": no xdist workers.
    shared = root / "shared"
    shared.mkdir(exist_ok=True)
    path, done = shared / name, shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)
            build(str(path))
            done.touch()
    return str(path)


@pytest.fixture(scope="session")
def run_module():
    """Runs a target of `tests.isolated.command` to its end; see `isolated.run_module`."""
    return isolated.run_module


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, worker_id):
    """A prepared 4-class, 5-group demo dataset (TFRecords) and its video tree."""

    def build(root: str) -> None:
        videos = os.path.join(root, "videos")
        _make_demo(videos, num_groups=5, clips_per_group=3, num_frames=16, num_classes=4, seed=0)
        prepare.prepare_dataset(
            videos, os.path.join(root, "records"), short_side=64, workers=1, progress=False
        )

    root = _built_once(tmp_path_factory, worker_id, "tiny_demo", build)
    return {"videos": os.path.join(root, "videos"), "records": os.path.join(root, "records")}


@pytest.fixture(scope="session")
def export_data(tmp_path_factory, worker_id) -> str:
    """3 classes x 2 groups x 2 clips of 12 frames, UCF50 layout (AVI, 320x240)."""

    def build(path: str) -> None:
        _make_demo(path, num_groups=2, clips_per_group=2, num_frames=12, num_classes=3)

    return _built_once(tmp_path_factory, worker_id, "export_data", build)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, worker_id, export_data) -> str:
    """A model dir (all-op-types TVN, 4 frames of 32x32) whose checkpoint has non-trivial weights.

    A few SGD steps on random clips move every weight and batch-norm statistic
    off its initial value, so that the parity figures compare real numbers.
    """

    def build(path: str) -> None:
        import keras
        import tensorflow as tf

        from tvn_tf import model_dir as model_dir_lib
        from tvn_tf.data import layout
        from tvn_tf.models import architecture as arch_lib

        arch = arch_lib.load_architecture_json(os.path.join(isolated.ROOT, ALL_OPS))
        spec = model_dir_lib.ModelSpec(
            name=arch.name,
            architecture=arch.to_json(),
            class_names=layout.scan_videos(export_data).classes,
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
            tf.train.Checkpoint(model=model),
            os.path.join(path, model_dir_lib.CHECKPOINTS),
            max_to_keep=1,
        ).save()

    return _built_once(tmp_path_factory, worker_id, "trained_run", build)


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory, worker_id, trained_model_dir, export_data) -> str:
    """`python -m tvn_tf.export` of `trained_model_dir` on `export_data` (test group 1)."""

    def build(path: str) -> None:
        result = isolated.run_module(
            "tvn_tf.export",
            f"--model_dir={trained_model_dir}",
            f"--output_dir={path}",
            f"--data_dir={export_data}",
            "--split=logo",
            "--fold=1",
            "--calibration_clips=16",
            "--augmented_calibration_clips=8",
            "--eval_clips=3",
        )
        assert result.returncode == 0, result.stderr[-3000:]

    return _built_once(tmp_path_factory, worker_id, "export", build)


@pytest.fixture(scope="module")
def keras_model(trained_model_dir):
    """The Keras model of `trained_model_dir` and its spec, restored once per test file."""
    from tvn_tf import model_dir as model_dir_lib

    model, spec, _ = model_dir_lib.restore_model(trained_model_dir)
    return model, spec
