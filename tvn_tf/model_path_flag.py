"""`--model_path`: the exported or trained model that `predict`, `benchmark` and
`deploy.android` load (`tvn_tf.deploy.loading`).

One meaning per flag name: `--model` names an architecture (`train`,
`model_info`: `model_flags`), and a file or folder is `--model_path`. In these
three binaries `--model` is a deprecated alias of `--model_path`: it works and
prints one warning line.
"""

from __future__ import annotations

import sys

from absl import flags

FLAGS = flags.FLAGS


def define_flags(help_text: str) -> None:
    """Defines `--model_path` (described by `help_text`) and its deprecated alias `--model`."""
    flags.DEFINE_string("model_path", None, help_text)
    flags.DEFINE_string(
        "model",
        None,
        "Deprecated: the old name of --model_path (elsewhere, as in train and model_info, "
        "--model names an architecture).",
    )


def model_path(binary: str, required: bool = True) -> str | None:
    """The path given, by `--model_path` or (with a warning line) by `--model`.

    Args:
      binary: The binary's name, which starts the warning line.
      required: Whether a path must be given; if not, None stands for none.

    Raises:
      ValueError: both are given, or (`required`) neither.
    """
    if FLAGS.model and FLAGS.model_path:
        raise ValueError("--model is the old name of --model_path; give --model_path alone.")
    if FLAGS.model:
        print(
            f"{binary}: warning: --model is deprecated here (it names an architecture in "
            f"train); use --model_path={FLAGS.model}.",
            file=sys.stderr,
        )
        return FLAGS.model
    if not FLAGS.model_path and required:
        raise ValueError(
            "--model_path is required (a .tflite file, a SavedModel or export folder, "
            "or a training run's --model_dir)."
        )
    return FLAGS.model_path
