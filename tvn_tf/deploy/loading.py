"""Loads a TVN from a path, whatever form it was saved in: one runner, one input description.

The three forms a user can point a binary at (`predict`, `benchmark`, the
Android parser) or the search can time:

    a .tflite file            `tvn_tf.deploy.tflite` (LiteRT, XNNPACK); float
                              clips in, so frames are preprocessed here
    a SavedModel folder       `tvn_tf.deploy.serving`'s `serving_default`, uint8
                              frames in, preprocessing inside; an export folder
                              holding `saved_model/` counts as one
    a training run's folder   `tvn_tf.model_dir.restore_model` (the Keras model,
                              its latest checkpoint)

The model's input (frames, stride, size, class names) is a
`tvn_tf.models.model_input.ModelInput`: from the run's `model.json` for a
training run, else from the export's `model_info.json`, looked up beside the
file, inside the folder, or in its `assets.extra/`.

    runner = load("exports/demo/model_int8.tflite", threads=2)
    runner.input.num_frames, runner.input.class_names
    scores = runner.probabilities(uint8_clips)   # [n, frames, H, W, 3] -> [n, classes]
    call = runner.timed_call()                   # one batch-1 inference, for timing
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from tvn_tf.deploy import serving
from tvn_tf.models.model_input import ModelInput

TFLITE = "tflite"
SAVED_MODEL = "saved_model"
KERAS = "keras"
KINDS = (TFLITE, SAVED_MODEL, KERAS)
# A SavedModel read without model_info.json is timed at this resolution.
DEFAULT_IMAGE_SIZE = 224


def artifact_kind(path: str) -> str:
    """Which of `KINDS` the file or folder at `path` is.

    Raises:
      ValueError: naming `--model_path` when the path is none of the three.
    """
    from tvn_tf import model_dir

    if os.path.isfile(path) and path.endswith(".tflite"):
        return TFLITE
    if os.path.isdir(path):
        if serving.saved_model_folder(path):
            return SAVED_MODEL
        if os.path.isfile(os.path.join(path, model_dir.SPEC_FILE)):
            return KERAS
    raise ValueError(
        f"--model_path={path}: not a .tflite file, a SavedModel folder or a model directory."
    )


def model_info_path(path: str) -> str | None:
    """Where the `model_info.json` of an export is: beside `path`, inside it, or in its
    assets.extra; None when there is none."""
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    for candidate in (
        os.path.join(folder, serving.MODEL_INFO_FILE),
        os.path.join(folder, serving.EXTRA_DIR, serving.MODEL_INFO_FILE),
        os.path.join(folder, serving.EXPORT_SUBDIR, serving.EXTRA_DIR, serving.MODEL_INFO_FILE),
        os.path.join(os.path.dirname(folder), serving.MODEL_INFO_FILE),
    ):
        if os.path.isfile(candidate):
            return candidate
    return None


def read_model_info(path: str) -> dict[str, Any] | None:
    """The `model_info.json` of an export (`model_info_path`).

    Returns:
      The whole JSON object (its FLOPs, checkpoint, ... as `tvn_tf.export` wrote
      them), or None when there is none.
    """
    found = model_info_path(path)
    if found is None:
        return None
    with open(found) as f:
        return json.load(f)


def _no_model_info(path: str) -> ValueError:
    return ValueError(
        f"--model_path={path}: no {serving.MODEL_INFO_FILE} beside it; use the "
        "folder written by tvn_tf.export."
    )


class Runner:
    """A loaded model: its input, its scores, and one batch-1 inference to time.

    Attributes:
      kind: One of `KINDS`.
      path: What was loaded (the SavedModel folder itself for an export folder).
      input: The model's `ModelInput`; None for a `.tflite` or SavedModel
        without `model_info.json` (it can then be timed, not used to label).
      description: One line naming the model, e.g. "TFLite model_int8.tflite".
      engine: How it runs, e.g. "XNNPACK".
      tensorflow_threads_set: False when TensorFlow was already running in this
        process, so `threads` could not take effect (None: not asked yet).
    """

    kind: str
    engine: str

    def __init__(self, path: str, input: ModelInput | None, description: str, threads: int):
        self.path = path
        self.input = input
        self.description = description
        self.threads = threads
        self.tensorflow_threads_set: bool | None = None

    def _set_tensorflow_threads(self) -> None:
        from tvn_tf import perf

        if self.tensorflow_threads_set is None:
            self.tensorflow_threads_set = perf.set_tensorflow_threads(self.threads)

    def _require_input(self) -> ModelInput:
        if self.input is None:
            raise _no_model_info(self.path)
        return self.input

    def probabilities(self, frames):
        """Class probabilities `[n, classes]` of uint8 RGB clips `[n, frames, H, W, 3]`.

        Any frame size: frames are centre squared, resized and normalised as in
        evaluation (`tvn_tf.data.preprocessing.preprocess_for_eval`).

        Raises:
          ValueError: the model's input is unknown (no `model_info.json`).
        """
        raise NotImplementedError

    def flops(self) -> int | None:
        """FLOPs of one clip's forward pass: `model_info.json`'s, else counted, else None."""
        raise NotImplementedError

    def timed_call(self) -> Callable[[], Any]:
        """A no-argument callable running one batch-1 inference on a fixed random clip."""
        raise NotImplementedError


class _TFLiteRunner(Runner):
    kind, engine = TFLITE, "XNNPACK"

    def __init__(self, path: str, info: dict[str, Any] | None, threads: int):
        from tvn_tf.deploy import tflite

        model_input = ModelInput.from_json(info, path) if info else None
        super().__init__(path, model_input, f"TFLite {os.path.basename(path)}", threads)
        self._info = info
        self.interpreter = tflite.TFLiteRunner(path, threads=threads)
        if model_input is not None:
            self._check_fits(model_input)

    def _check_fits(self, model_input: ModelInput) -> None:
        """Refuses a `.tflite` whose input or classes differ from its `model_info.json`'s.

        A file copied beside another export's `model_info.json` would otherwise
        fail at the first clip with the interpreter's "Dimension mismatch",
        naming neither file.
        """
        have = (self.interpreter.clip_shape, self.interpreter.num_classes)
        want = (tuple(model_input.clip_shape), model_input.num_classes)
        if have != want:
            shape = lambda clip, classes: (  # noqa: E731
                f"clips [{', '.join(map(str, clip))}] -> {classes} classes"
            )
            raise ValueError(
                f"--model_path={self.path} takes {shape(*have)}, but "
                f"{model_info_path(self.path)} describes {shape(*want)}: it belongs to "
                "another export; keep each .tflite in the folder tvn_tf.export wrote it to."
            )

    def probabilities(self, frames):
        import tensorflow as tf

        from tvn_tf.data import preprocessing

        size = self._require_input().image_size
        self._set_tensorflow_threads()  # TensorFlow preprocesses the frames.
        clips = preprocessing.preprocess_for_eval(tf.constant(frames), size).numpy()
        return tf.nn.softmax(self.interpreter(clips)).numpy()

    def flops(self) -> int | None:
        from tvn_tf.deploy import tflite

        return self._info["flops"] if self._info else tflite.count_flops(self.path)

    def timed_call(self) -> Callable[[], Any]:
        import numpy as np

        rng = np.random.default_rng(0)
        shape = self.interpreter.clip_shape
        self.interpreter.set_clip(rng.uniform(-1, 1, shape).astype(np.float32))
        return self.interpreter.interpreter.invoke


class _SavedModelRunner(Runner):
    kind, engine = SAVED_MODEL, "serving_default, preprocessing included"

    def __init__(self, path: str, info: dict[str, Any] | None, threads: int, batch_size: int):
        import tensorflow as tf

        folder = serving.saved_model_folder(path)
        model_input = ModelInput.from_json(info, path) if info else None
        super().__init__(folder, model_input, f"SavedModel {folder}", threads)
        self._set_tensorflow_threads()
        self._info = info
        self._batch_size = batch_size
        self.serve = tf.saved_model.load(folder).signatures[serving.SIGNATURE]

    def probabilities(self, frames):
        import numpy as np
        import tensorflow as tf

        self._require_input()
        step = self._batch_size
        return np.concatenate(
            [
                self.serve(**{serving.INPUT: tf.constant(frames[i : i + step])})[
                    "probabilities"
                ].numpy()
                for i in range(0, len(frames), step)
            ]
        )

    def flops(self) -> int | None:
        return self._info["flops"] if self._info else None

    def timed_call(self) -> Callable[[], Any]:
        import numpy as np
        import tensorflow as tf

        rng = np.random.default_rng(0)
        (signature,) = self.serve.structured_input_signature[1].values()
        size = self.input.image_size if self.input else DEFAULT_IMAGE_SIZE
        frames = tf.constant(
            rng.integers(0, 256, (1, signature.shape[1], size, size, 3), dtype=np.uint8)
        )
        return lambda: self.serve(**{serving.INPUT: frames})["probabilities"].numpy()


class _KerasRunner(Runner):
    kind, engine = KERAS, "tf.function"

    def __init__(self, path: str, threads: int, batch_size: int):
        import tensorflow as tf

        from tvn_tf import model_dir

        super().__init__(path, None, "", threads)
        self._set_tensorflow_threads()
        self.model, spec, checkpoint = model_dir.restore_model(path)
        self.input = spec.input
        self.description = f"Keras {spec.name} ({checkpoint})"
        self._batch_size = batch_size
        self._forward = tf.function(
            lambda x: self.model(x, training=False), reduce_retracing=True, autograph=False
        )

    def probabilities(self, frames):
        import numpy as np
        import tensorflow as tf

        from tvn_tf.data import preprocessing

        step = self._batch_size
        return np.concatenate(
            [
                tf.nn.softmax(
                    self._forward(
                        preprocessing.preprocess_for_eval(
                            tf.constant(frames[i : i + step]), self.input.image_size
                        )
                    )
                ).numpy()
                for i in range(0, len(frames), step)
            ]
        )

    def flops(self) -> int | None:
        from tvn_tf.models import flops as flops_lib

        return flops_lib.count_flops(self.model).forward

    def timed_call(self) -> Callable[[], Any]:
        import numpy as np
        import tensorflow as tf

        rng = np.random.default_rng(0)
        clip = tf.constant(rng.uniform(-1, 1, (1, *self.input.clip_shape)).astype(np.float32))
        return lambda: self._forward(clip).numpy()


def load(path: str, threads: int = 2, batch_size: int = 8, require_input: bool = False) -> Runner:
    """Loads the model at `path` (a `.tflite`, a SavedModel or export folder, a run folder).

    Args:
      path: The file or folder.
      threads: Threads for the interpreter, or TensorFlow's intra-op threads
        (set only if TensorFlow is not running yet; see `Runner`).
      batch_size: Clips per call of a SavedModel or Keras model in `probabilities`.
      require_input: Refuse, before loading anything, a `.tflite` or SavedModel
        without `model_info.json` (it could be timed, but not label a video).

    Raises:
      ValueError: naming `--model_path` and what was expected, when the path is
        none of the three forms, or lacks its `model_info.json` (`require_input`).
    """
    kind = artifact_kind(path)
    if kind == KERAS:
        return _KerasRunner(path, threads, batch_size)
    info = read_model_info(path)
    if info is None and require_input:
        raise _no_model_info(path)
    if kind == TFLITE:
        return _TFLiteRunner(path, info, threads)
    return _SavedModelRunner(path, info, threads, batch_size)
