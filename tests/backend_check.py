"""The six released TVNs on one Keras backend, run in a child process by test_backends.py.

`KERAS_BACKEND` is read once, when Keras is imported, so each backend gets its own
process. A child on JAX or PyTorch first makes TensorFlow unimportable (as on a
machine without it: `main`), then: imports the models and records whether TensorFlow came
along; runs the layer contract (`layer_testing.run_layer_cases`); builds every TVN
(reduced width and resolution, dynamic batch) in float32 and under mixed_bfloat16;
loads the weights other backends saved and compares logits with TensorFlow's; saves
its own; and trains a few steps on a fixed batch in the backend's own loop
(`train_on_batch`'s compiled step on TensorFlow and JAX, a `torch.optim` loop on
PyTorch).

    python -c "from tests import backend_check; backend_check.main('/tmp/x', ['tensorflow'])"
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

NUM_CLASSES = 5
BATCH = 4
IMAGE_SIZE = 32
WIDTH = 0.25
TRAIN_STEPS = 3


def block_tensorflow() -> None:
    """Makes `import tensorflow` fail, as where it is not installed.

    A None entry in `sys.modules` stops the import (ModuleNotFoundError) and makes
    `importlib.util.find_spec` answer None, which is how Keras and PyTorch probe
    for TensorFlow before they carry on without it.
    """
    sys.modules["tensorflow"] = None  # type: ignore[assignment]


def architectures(width: float = WIDTH, image_size: int = IMAGE_SIZE) -> dict[str, Any]:
    """Every released TVN, scaled to `image_size` pixels and `width` times the filters."""
    from tvn_tf.models import architecture as arch_lib
    from tvn_tf.models import scaling

    archs = {}
    for name in arch_lib.list_architectures():
        arch = arch_lib.get_architecture(name)
        archs[name] = scaling.scale_architecture(
            arch, resolution=image_size / arch.image_size, width=width
        )
    return archs


def _train(model, clips, labels) -> list[float]:
    """Losses of `TRAIN_STEPS` steps on one batch, then of the trained model (training mode)."""
    import keras

    if keras.backend.backend() == "torch":
        import torch

        assert isinstance(model, torch.nn.Module)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.as_tensor(clips), torch.as_tensor(labels)
        losses = []
        for _ in range(TRAIN_STEPS + 1):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x, training=True), y)
            losses.append(loss.item())
            if len(losses) <= TRAIN_STEPS:
                loss.backward()
                optimizer.step()
        return losses
    # On TensorFlow, eagerly: tracing the step of a TVN-Mobile takes about 20 s, the
    # three eager steps a second or two. The traced step is `tvn_tf.train`'s, and
    # tests/test_train.py runs it.
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=keras.backend.backend() == "tensorflow",
    )
    losses = [float(model.train_on_batch(clips, labels)) for _ in range(TRAIN_STEPS)]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    losses.append(float(loss_fn(labels, model(clips, training=True))))
    return losses


def _perturb(model, rng) -> None:
    """Gives every batch norm non-trivial statistics, scale and offset, and the classifier scale.

    Freshly initialised, a batch norm is the identity in inference and the
    classifier's kernel is normal(0.01): logits near zero would prove little.
    """
    import keras

    classifier = model.get_layer("head").classifier
    fan_in = classifier.kernel.shape[0]
    classifier.kernel.assign(
        rng.normal(0, 3 / fan_in**0.5, classifier.kernel.shape).astype("float32")
    )
    for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.8, 1.6, n).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.2, n).astype("float32"))
            layer.moving_mean.assign(rng.normal(0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.0, n).astype("float32"))


def _logits(model, clips):
    import keras

    return keras.ops.convert_to_numpy(model(clips, training=False))


def run(
    work_dir: str,
    sources: Sequence[str],
    width: float = WIDTH,
    image_size: int = IMAGE_SIZE,
    layer_cases: bool = True,
    train: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Runs every check on this process's backend; returns what it found.

    Args:
      work_dir: Shared between the children: clips, TensorFlow's logits, and
        `{model}.{backend}.weights.h5` of each backend that ran.
      sources: Backends whose saved weights to load (TensorFlow first). With no
        sources this process is the reference: it saves clips and logits.
      width: Filter multiplier of the models.
      image_size: Their input size.
      layer_cases: Also run `layer_testing.run_layer_cases`.
      train: The models to train a few steps (None: all).
    """
    from tvn_tf.models import tvn

    tensorflow_with_models = sys.modules.get("tensorflow") is not None
    import keras
    import numpy as np

    backend = keras.backend.backend()
    result: dict[str, Any] = {
        "backend": backend,
        "tensorflow_with_models": tensorflow_with_models,
        "models": {},
    }
    if layer_cases:
        from tests import layer_testing

        result["layer_failures"] = layer_testing.run_layer_cases()
    rng = np.random.default_rng(0)
    for name, arch in architectures(width, image_size).items():
        keras.utils.set_random_seed(0)
        model = tvn.TinyVideoNetwork(arch, NUM_CLASSES, dropout_rate=0.0)
        info: dict[str, Any] = {
            "params": model.count_params(),
            "input_shape": list(model.input_shape),
        }
        clips_path = os.path.join(work_dir, f"{name}.clips.npy")
        logits_path = os.path.join(work_dir, f"{name}.logits.npy")
        if not sources:
            np.save(clips_path, rng.random((BATCH, *arch.input.clip_shape), dtype=np.float32))
        clips = np.load(clips_path)
        labels = np.arange(BATCH) % NUM_CLASSES
        if not sources:
            _perturb(model, rng)
            np.save(logits_path, _logits(model, clips))
        reference = np.load(logits_path)
        info["max_logit_diff"] = {}
        for source in sources:
            model.load_weights(os.path.join(work_dir, f"{name}.{source}.weights.h5"))
            diff = np.abs(_logits(model, clips) - reference)
            info["max_logit_diff"][source] = float(np.max(diff))
        info["logit_scale"] = float(np.max(np.abs(reference)))
        model.save_weights(os.path.join(work_dir, f"{name}.{backend}.weights.h5"))
        if train is None or name in train:
            info["losses"] = _train(model, clips, labels)
        result["models"][name] = info

        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            mixed = tvn.TinyVideoNetwork(arch, NUM_CLASSES)
            info["mixed"] = {
                "block_dtype": mixed.get_layer("block0_0").compute_dtype,
                "logits_dtype": keras.backend.standardize_dtype(mixed.output.dtype),
            }
            # A bfloat16 forward pass compiles every op anew on JAX: the trained
            # models run one, the others are checked symbolically.
            if train is None or name in train:
                logits = mixed(clips[:1], training=False)
                info["mixed"]["logits_dtype"] = keras.backend.standardize_dtype(logits.dtype)
                info["mixed"]["finite"] = bool(
                    np.all(np.isfinite(keras.ops.convert_to_numpy(logits)))
                )
        finally:
            keras.mixed_precision.set_global_policy("float32")
    return result


def main(work_dir: str, sources: Sequence[str], **kwargs: Any) -> None:
    """`run`, with TensorFlow blocked off JAX and PyTorch; prints the result as JSON."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        block_tensorflow()
    report = json.dumps(run(work_dir, sources, **kwargs))
    with open(os.path.join(work_dir, f"report.{os.environ.get('KERAS_BACKEND')}.json"), "w") as f:
        f.write(report)
    print(report)
