"""What every binary and tool shares: start-up, flag definition, options built from flags.

The convention, for `tvn_tf/<binary>.py` and `tools/*.py`:

    from tvn_tf import cli

    cli.start()  # Before anything imports TensorFlow (quiets its start-up logs).

    from tvn_tf.training import config  # noqa: E402  (after cli.start)

    _DEFAULTS = config.TrainConfig(model_dir="")

    def define_flags() -> None:     # Flags are defined here, never at import,
        flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "...")  # defaults from the dataclass.

    def main(argv):
        options = cli.from_flags(config.TrainConfig, model_dir=...)  # By keyword.

    if __name__ == "__main__":
        cli.run(main, define_flags)

Flag groups shared by several binaries (`model_flags`, `data_flags`) offer a
`define_flags()` the binary's own calls. A flag name means one thing in every
binary; a renamed flag keeps its old name, which warns once (`renamed`).

This module loads neither TensorFlow nor Keras.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from absl import app
from absl import flags

from tvn_tf import platform_setup

T = TypeVar("T")


def start(argv: Sequence[str] | None = None) -> None:
    """The start-up of a binary or tool; call it before TensorFlow loads.

    TensorFlow's start-up lines (CUDA probing, the oneDNN notice) read as
    failures on a CPU-only machine: they are silenced unless `-v`/`--verbosity`
    of 1 or more is on the command line (`platform_setup.quiet_tensorflow`).
    """
    platform_setup.quiet_tensorflow(argv=argv)


def run(main: Callable[[list[str]], Any], define_flags: Callable[[], None]) -> None:
    """Defines the binary's flags, then runs `main` under absl (`app.run`)."""
    define_flags()
    app.run(main)


def from_flags(cls: type[T], flag_values: flags.FlagValues | None = None, **overrides: Any) -> T:
    """Builds the dataclass `cls` by keyword from the flags named as its fields.

    Fields without a flag of their name keep their defaults, unless given in
    `overrides` (which also win over flags).
    """
    values = flag_values or flags.FLAGS
    kwargs = {
        field.name: values[field.name].value
        for field in dataclasses.fields(cls)
        if field.init and field.name in values
    }
    kwargs.update(overrides)
    return cls(**kwargs)


def renamed(binary: str, old: str, new: str, old_value: T | None, new_value: T) -> T:
    """`new_value`, or `old_value` (and one warning line naming both flags) if `--old` was given.

    The old flag is defined with default None (so "not given" is visible) and
    the help "Deprecated: the old name of --NEW.".
    """
    if old_value is None:
        return new_value
    print(f"{binary}: warning: --{old} is deprecated; use --{new}={old_value}.", file=sys.stderr)
    return old_value
