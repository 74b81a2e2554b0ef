"""Training-only auxiliary classifiers on chosen blocks (deep supervision)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import scaling
from tvn_tf.models import tvn
from tvn_tf.training import deep_supervision


def test_aux_classifiers_share_the_blocks_and_name_bad_blocks():
    arch = dataclasses.replace(
        scaling.scale_architecture(arch_lib.get_architecture("tvn1"), width=0.25), image_size=32
    )
    model = tvn.TinyVideoNetwork(arch, num_classes=5)
    assert tvn.block_names(arch) == [x.name for x in model.layers if x.name.startswith("block")]
    training_model, heads = deep_supervision.build_training_model(
        model, ["block0_0", "block2_1"], 5
    )
    outputs = training_model(np.zeros((2, 2, 32, 32, 3), np.float32))
    assert [tuple(o.shape) for o in outputs] == [(2, 5)] * 3
    assert all(o.dtype == "float32" for o in outputs)
    # The training model trains the model's own blocks, not copies of them.
    assert training_model.get_layer("block0_0") is model.get_layer("block0_0")
    assert [h.name for h in heads] == ["aux_block0_0", "aux_block2_1"]
    assert len(model.trainable_variables) + 4 == len(training_model.trainable_variables)
    with pytest.raises(ValueError, match="a block named twice"):
        deep_supervision.check_names(arch, ["block0_0", "block0_0"])
