"""The TVNs on Keras' TensorFlow, JAX and PyTorch backends: same weights, same function.

`KERAS_BACKEND` is read when Keras is imported, so each backend runs in one child
process (tests/backend_check.py) that does all its checks at once: the layer
contract of tests/layer_testing.py, the six released TVNs (at 32 px, a quarter of
their width) built with a dynamic batch in float32 and mixed_bfloat16, weights
saved by TensorFlow (and by JAX, for PyTorch) loaded and the logits compared, and
a few training steps on a fixed batch. JAX and PyTorch children run with
TensorFlow made unimportable, as on a machine without it. A backend that is not
installed is skipped (`pip install -r requirements-backends.txt`).
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from tests.isolated import run_module, run_module_cases, run_python

BACKENDS = ["tensorflow", "jax", "torch"]
# float32 logits of the same weights, TensorFlow vs JAX / PyTorch, differ by the
# order of float32 sums in convolutions: measured up to ~3e-5 of the largest logit.
LOGIT_RTOL = 2e-4
# Training is checked on the two smallest TVNs here; docs/backends.md has all six.
TRAINED = ("tvn_mobile_1", "tvn_mobile_2")
CHILD_TIMEOUT = 1500
# A JAX child compiles hundreds of small programs and runs each once (every op of an
# eager call, every initializer's shape). Compiling them without LLVM's costly
# optimisations and with XLA's older loop emitters instead of its MLIR fusion emitters
# takes about half the time. Neither reassociates float arithmetic (fast math is
# off): the logits compared stay within LOGIT_RTOL.
JAX_QUICK_COMPILE = {
    "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    " --xla_cpu_use_fusion_emitters=false"
}
# A PyTorch child runs one thread: its ops here take milliseconds, and with two
# threads on a machine whose cores the other test workers hold, each op's threads
# wait for one another, and the child takes several times as long.
TORCH_ONE_THREAD = {"OMP_NUM_THREADS": "1"}
CHILD_ENV = {"jax": JAX_QUICK_COMPILE, "torch": TORCH_ONE_THREAD}


def _installed(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("backends"))


@pytest.fixture(scope="module")
def reports(work_dir) -> dict:
    """Each backend's child report, in order: TensorFlow's weights come first."""
    return {}


def _report(backend: str, reports: dict, work_dir: str) -> dict:
    if backend in reports:
        return reports[backend]
    if backend != "tensorflow":
        _report("tensorflow", reports, work_dir)
    if not _installed(backend):
        pytest.skip(f"{backend} is not installed (pip install -r requirements-backends.txt)")
    sources = [b for b in BACKENDS[: BACKENDS.index(backend)] if b in reports]
    reports[backend] = run_python(
        f"""
        from tests import backend_check
        backend_check.main({work_dir!r}, {sources!r}, train={list(TRAINED)!r})
        """,
        timeout=CHILD_TIMEOUT,
        env={"KERAS_BACKEND": backend, **CHILD_ENV.get(backend, {})},
    )
    return reports[backend]


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_runs_the_layer_contract_and_builds_every_tvn(backend, reports, work_dir):
    report = _report(backend, reports, work_dir)
    assert report["backend"] == backend
    assert report["layer_failures"] == {}
    if backend != "tensorflow":  # Keras on TensorFlow imports it, of course.
        assert not report["tensorflow_with_models"]
    models = report["models"]
    assert sorted(models) == ["tvn1", "tvn2", "tvn3", "tvn4", "tvn_mobile_1", "tvn_mobile_2"]
    reference = _report("tensorflow", reports, work_dir)["models"]
    for name, info in models.items():
        assert info["input_shape"][0] is None, name  # A dynamic batch.
        assert info["params"] == reference[name]["params"], name
        expected = {"block_dtype": "bfloat16", "logits_dtype": "float32"}
        if name in TRAINED:  # These also ran a bfloat16 forward pass.
            expected["finite"] = True
        assert info["mixed"] == expected, name


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_weights_saved_on_one_backend_give_the_same_logits_on_another(backend, reports, work_dir):
    models = _report(backend, reports, work_dir)["models"]
    for name, info in models.items():
        scale = info["logit_scale"]
        assert scale > 0.1, name  # Not a near-zero comparison.
        assert "tensorflow" in info["max_logit_diff"], name
        for source, diff in info["max_logit_diff"].items():
            assert diff <= LOGIT_RTOL * scale, (name, source, diff, scale)


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_steps_lower_the_loss_on_a_fixed_batch(backend, reports, work_dir):
    models = _report(backend, reports, work_dir)["models"]
    for name in TRAINED:
        losses = models[name]["losses"]
        assert np.all(np.isfinite(losses)), (name, losses)
        assert losses[-1] < losses[0], (name, losses)


def test_models_import_without_tensorflow():
    if not _installed("jax"):
        pytest.skip("jax is not installed (pip install -r requirements-backends.txt)")
    imported = run_python(
        """
        import sys
        import tvn_tf.models.tvn, tvn_tf.models.architecture, tvn_tf.models.model_input
        print('true' if 'tensorflow' in sys.modules else 'false')
        """,
        env={"KERAS_BACKEND": "jax"},
    )
    assert imported is False


def test_checkpoint_to_weights_output_loads_on_jax(trained_model_dir, tmp_path):
    if not _installed("jax"):
        pytest.skip("jax is not installed (pip install -r requirements-backends.txt)")
    output = str(tmp_path / "tvn.weights.h5")
    good, no_dir, bad_name, no_spec = run_module_cases(
        "tools/checkpoint_to_weights.py",
        [
            [f"--model_dir={trained_model_dir}", f"--output={output}"],
            [f"--output={output}"],
            [f"--model_dir={trained_model_dir}", f"--output={tmp_path / 'tvn.h5'}"],
            [f"--model_dir={tmp_path}", f"--output={output}"],
        ],
    )
    assert good.returncode == 0, good.stderr
    written = json.loads(good.stdout.strip().splitlines()[-1])
    assert written["weights"] == output and os.path.isfile(written["spec"])
    for case, message in [
        (no_dir, "--model_dir is required"),
        (bad_name, "expected a file name ending in .weights.h5"),
        (no_spec, "no model.json there"),
    ]:
        assert case.returncode != 0
        assert message in case.stderr and "Traceback" not in case.stderr
    assert not os.path.exists(tmp_path / "tvn.h5")

    clips = np.random.default_rng(5).random((2, 4, 32, 32, 3), dtype=np.float32)
    np.save(tmp_path / "clips.npy", clips)
    code = f"""
        import json
        import numpy as np
        from tvn_tf.model_dir import ModelSpec

        with open({written["spec"]!r}) as f:
            model = ModelSpec.from_json(json.load(f)).build()
        model.load_weights({output!r})
        logits = model(np.load({str(tmp_path / "clips.npy")!r}), training=False)
        print(json.dumps(np.asarray(logits).tolist()))
    """
    jax_logits = np.array(run_python(code, env={"KERAS_BACKEND": "jax", **JAX_QUICK_COMPILE}))

    from tvn_tf import model_dir as model_dir_lib

    model, _, _ = model_dir_lib.restore_model(trained_model_dir)
    tf_logits = np.asarray(model(clips, training=False))
    np.testing.assert_allclose(
        jax_logits, tf_logits, atol=1e-6 + LOGIT_RTOL * np.max(np.abs(tf_logits))
    )


def test_bench_gpu_runs_on_jax_on_a_tiny_shape():
    if not _installed("jax"):
        pytest.skip("jax is not installed (pip install -r requirements-backends.txt)")
    result = run_module(
        "tools/bench_gpu.py",
        "--models=tvn_mobile_2",
        "--image_size=32",
        "--batch_sizes=2",
        "--steps=1",
        "--warmup_steps=1",
        "--latency_runs=1",
        "--dtypes=float32",
        env={"KERAS_BACKEND": "jax", **JAX_QUICK_COMPILE},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["backend"] == "jax" and summary["skipped"] == []
    latency, train = summary["results"]
    assert latency["kind"] == "latency" and latency["p50_ms"] > 0
    assert train["kind"] == "train" and train["batch"] == 2 and train["clips_per_s"] > 0
    assert train["hours_80_epochs_ucf50"] > 0 and train["tflops"] > 0
    assert "share_of_peak" in train  # None on a CPU: no peak to compare with.
