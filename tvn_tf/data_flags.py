"""Flags that name the data and its split, shared by `train`, `evaluate` and `export`."""

from __future__ import annotations

import dataclasses

from absl import flags

from tvn_tf import model_dir as model_dir_lib
from tvn_tf.data import dataset as data_lib

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "data_dir",
    None,
    "A folder from tools/prepare_ucf50.py (TFRecords), or a "
    "UCF50-style tree <Class>/v_<Class>_gNN_cMM.avi.",
)
flags.DEFINE_enum(
    "data_format",
    "auto",
    data_lib.DATA_FORMATS,
    "auto: TFRecords if the folder has them, else the .avi tree.",
)
flags.DEFINE_enum(
    "split",
    "logo",
    data_lib.SPLITS,
    "logo: leave one group out (test = group --fold); kfold: group-wise K-fold "
    "(test = block --fold of --num_folds); all: train on every group.",
)
flags.DEFINE_integer(
    "fold",
    1,
    "Which fold (1-based): the test group for logo, the test block for kfold.",
    lower_bound=1,
)
flags.DEFINE_integer("num_folds", 5, "K of the group-wise K-fold split.", lower_bound=2)
flags.DEFINE_integer(
    "num_validation_groups",
    0,
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
    return data_lib.DataConfig(**{name: FLAGS[name].value for name in _NAMES})


def data_config_of_run(model_dir: str) -> data_lib.DataConfig:
    """A trained run's data and split, with the data flags given on the command line on top.

    The rule is `tvn_tf.model_dir.data_config`'s.

    Raises:
      ValueError: no data folder is known, or the run's config is unreadable.
    """
    given = {name: FLAGS[name].value for name in _NAMES if FLAGS[name].present}
    defaults = {name: FLAGS[name].default for name in _NAMES}
    return model_dir_lib.data_config(model_dir, given, defaults)


_NAMES = tuple(field.name for field in dataclasses.fields(data_lib.DataConfig))
