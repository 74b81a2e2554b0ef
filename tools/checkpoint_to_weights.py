"""Turns a training run's checkpoint into a Keras `.weights.h5` that any backend loads.

    python tools/checkpoint_to_weights.py --model_dir=runs/demo --output=tvn1.weights.h5
    python tools/checkpoint_to_weights.py --model_dir=runs/demo --checkpoint=best \\
        --output=tvn1_best.weights.h5

`python -m tvn_tf.train` writes TensorFlow checkpoints (`tf.train.Checkpoint`),
which only TensorFlow reads. This tool runs on the TensorFlow backend: it rebuilds
the run's model from its `model.json`, restores the checkpoint's model weights
(nothing of the optimizer), and writes them with `Model.save_weights`, the format
Keras reads on TensorFlow, JAX and PyTorch alike. Next to the weights it writes
the run's model spec (`tvn1.model.json` for `tvn1.weights.h5`), which is all a
JAX or PyTorch process needs to rebuild the same model without the run folder
(see docs/backends.md):

    spec = ModelSpec.from_json(json.load(open("tvn1.model.json")))
    model = spec.build()
    model.load_weights("tvn1.weights.h5")

Both files are written under a temporary name and renamed into place. Prints one
JSON line: the files written, the checkpoint, the model and its parameter count.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import flags  # noqa: E402

from tvn_tf import cli  # noqa: E402

cli.start()

from tvn_tf import atomic  # noqa: E402
from tvn_tf import model_dir as model_dir_lib  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines --model_dir, --checkpoint and --output."""
    flags.DEFINE_string("model_dir", None, "A training run's --model_dir (python -m tvn_tf.train).")
    flags.DEFINE_string(
        "checkpoint",
        None,
        "Which checkpoint: 'latest' (default), 'best', or a prefix like "
        "MODEL_DIR/checkpoints/ckpt-100.",
    )
    flags.DEFINE_string(
        "output", None, "The weights file to write; its name must end in .weights.h5."
    )


SUFFIX = ".weights.h5"


def spec_path(output: str) -> str:
    """`tvn1.weights.h5` -> `tvn1.model.json`: where the model spec goes."""
    return output[: -len(SUFFIX)] + ".model.json"


def _check_flags() -> None:
    if not FLAGS.model_dir:
        raise ValueError("--model_dir is required (a training run's folder).")
    if not os.path.isfile(os.path.join(FLAGS.model_dir, model_dir_lib.SPEC_FILE)):
        raise ValueError(
            f"--model_dir={FLAGS.model_dir}: no {model_dir_lib.SPEC_FILE} there; expected "
            "the --model_dir of python -m tvn_tf.train."
        )
    if not FLAGS.output or not FLAGS.output.endswith(SUFFIX):
        raise ValueError(
            f"--output={FLAGS.output or ''}: expected a file name ending in {SUFFIX} "
            "(Keras reads weights by that suffix)."
        )
    folder = os.path.dirname(os.path.abspath(FLAGS.output))
    if not os.path.isdir(folder):
        raise ValueError(f"--output={FLAGS.output}: folder {folder} does not exist.")


def convert(model_dir: str, output: str, checkpoint: str | None = None) -> dict:
    """Writes `output` (weights) and its `.model.json` from a run's checkpoint.

    Returns:
      What was written: paths, checkpoint, model name, parameter count.

    Raises:
      ValueError: no such checkpoint, a damaged one, or one of another model.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"KERAS_BACKEND is {keras.backend.backend()!r}; this tool reads TensorFlow "
            "checkpoints and runs on the tensorflow backend."
        )
    spec = model_dir_lib.read_spec(model_dir)
    path = model_dir_lib.checkpoint_path(model_dir, checkpoint)
    model = spec.build()
    model_dir_lib.restore_weights(model, path, os.path.join(model_dir, model_dir_lib.SPEC_FILE))
    folder, base = os.path.split(os.path.abspath(output))
    tmp = os.path.join(folder, f".tmp{os.getpid()}.{base}")  # Keeps the .weights.h5 suffix.
    try:
        model.save_weights(tmp)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    atomic.write_text(spec_path(output), json.dumps(spec.to_json(), indent=1) + "\n")
    return {
        "weights": output,
        "spec": spec_path(output),
        "checkpoint": path,
        "model": spec.name,
        "params": model.count_params(),
    }


def main(argv):
    if len(argv) > 1:
        sys.exit(f"checkpoint_to_weights: unexpected arguments {' '.join(argv[1:])}.")
    try:
        _check_flags()
        result = convert(FLAGS.model_dir, FLAGS.output, FLAGS.checkpoint)
    except ValueError as e:
        sys.exit(f"checkpoint_to_weights: {e}")
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main, define_flags)
