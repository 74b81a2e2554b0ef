"""`--model_path`: the exported or trained model that `predict` and `benchmark` load.

`--model` names an architecture in `train` and `model_info` (`model_flags`), so
a file or folder is `--model_path`. `--model`, its old name in these two
binaries, still works as a deprecated alias and prints one warning line.
"""

from __future__ import annotations

import sys

from absl import flags

FLAGS = flags.FLAGS


def define_flags(help_text: str) -> None:
    """Defines `--model_path` (described by `help_text`) and its deprecated alias `--model`."""
    flags.DEFINE_string("model_path", None, help_text)
    flags.DEFINE_string("model", None, "Deprecated: the old name of --model_path.")


def model_path(binary: str) -> str:
    """The path given, by `--model_path` or (with a warning line) by `--model`.

    Raises:
      ValueError: neither or both are given.
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
    if not FLAGS.model_path:
        raise ValueError(
            "--model_path is required (a .tflite file, a SavedModel or export folder, "
            "or a training run's --model_dir)."
        )
    return FLAGS.model_path
