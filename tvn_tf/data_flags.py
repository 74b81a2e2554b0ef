"""Flags that name the data and its split, shared by the binaries that read data.

`train`, `evaluate`, `export`, the search and the benchmarks call
`define_flags()` from their own `define_flags`; the flags map one to one onto
the fields of `tvn_tf.data.dataset.DataConfig`, whose defaults they take.
"""

from __future__ import annotations

import dataclasses

from absl import flags

from tvn_tf import cli
from tvn_tf import run_record
from tvn_tf.data import dataset as data_lib

FLAGS = flags.FLAGS
_DEFAULTS = data_lib.DataConfig(data_dir="")
_NAMES = tuple(field.name for field in dataclasses.fields(data_lib.DataConfig))


def define_flags() -> None:
    """Defines --data_dir, --data_format, --split, --fold, --num_folds, --num_validation_groups."""
    flags.DEFINE_string(
        "data_dir",
        None,
        "A folder from tools/prepare_ucf50.py (TFRecords), or a "
        "UCF50-style tree <Class>/v_<Class>_gNN_cMM.avi.",
    )
    flags.DEFINE_enum(
        "data_format",
        _DEFAULTS.data_format,
        data_lib.DATA_FORMATS,
        "auto: TFRecords if the folder has them, else the .avi tree.",
    )
    flags.DEFINE_enum(
        "split",
        _DEFAULTS.split,
        data_lib.SPLITS,
        "logo: leave one group out (test = group --fold); kfold: group-wise K-fold "
        "(test = block --fold of --num_folds); all: train on every group.",
    )
    flags.DEFINE_integer(
        "fold",
        _DEFAULTS.fold,
        "Which fold (1-based): the test group for logo, the test block for kfold.",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "num_folds", _DEFAULTS.num_folds, "K of the group-wise K-fold split.", lower_bound=2
    )
    flags.DEFINE_integer(
        "num_validation_groups",
        _DEFAULTS.num_validation_groups,
        "Whole training groups held out for validation (model selection, the best checkpoint).",
        lower_bound=0,
    )


def data_config_from_flags() -> data_lib.DataConfig:
    """The `DataConfig` the flags describe.

    Raises:
      ValueError: if --data_dir is not given.
    """
    if not FLAGS.data_dir:
        raise ValueError("--data_dir is required (see README: demo data or UCF50).")
    return cli.from_flags(data_lib.DataConfig)


def data_config_of_run(model_dir: str) -> data_lib.DataConfig:
    """A trained run's data and split, with the data flags given on the command line on top.

    The rule is `tvn_tf.run_record.data_config`'s.

    Raises:
      ValueError: no data folder is known, or the run's config is unreadable.
    """
    given = {name: FLAGS[name].value for name in _NAMES if FLAGS[name].present}
    defaults = {name: FLAGS[name].default for name in _NAMES}
    return run_record.data_config(model_dir, given, defaults)
