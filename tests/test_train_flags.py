"""The flags of `tvn_tf.train` and `tvn_tf.evaluate`: defined on demand, defaults from TrainConfig."""

from __future__ import annotations

from tests.isolated import run_python


def test_train_and_evaluate_import_together_and_train_flags_default_to_train_config():
    result = run_python(
        """
        import json
        from absl import flags
        from tvn_tf import evaluate, train  # Both in one process: no flag is defined yet.
        from tvn_tf.training import config as config_lib

        train.define_flags()
        flags.FLAGS(["train", "--model_dir=/runs/a", "--aux_classifiers=block0_0"])
        config = train.config_from_flags()
        expected = config_lib.TrainConfig(model_dir="/runs/a", aux_classifiers=("block0_0",))
        print(json.dumps([config == expected, flags.FLAGS["eval_crops"].value]))
        """
    )
    assert result == [True, "1"]
