"""The learning-rate schedule, the optimizers and per-block learning-rate multipliers."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tvn_tf.training import optimization


def test_warmup_cosine_schedule():
    schedule = optimization.WarmupCosineDecay(0.4, warmup_steps=10, total_steps=110)
    values = [float(schedule(s)) for s in (0, 5, 10, 60, 110, 200)]
    np.testing.assert_allclose(values, [0, 0.2, 0.4, 0.2, 0, 0], atol=1e-6)


@pytest.mark.parametrize("name", optimization.OPTIMIZERS)
def test_every_optimizer_steps_downhill_and_decays_no_bias(name):
    schedule = optimization.WarmupCosineDecay(0.01, warmup_steps=0, total_steps=10)
    optimizer = optimization.make_optimizer(name, schedule, weight_decay=0.5)
    kernel = keras.Variable(np.full(4, 2.0, np.float32), name="kernel")
    bias = keras.Variable(np.full(4, 2.0, np.float32), name="bias")
    # Zero gradient for the bias: only weight decay could move it, and it must not.
    optimizer.apply_gradients([(2 * kernel.value, kernel), (tf.zeros(4), bias)])
    assert np.all(kernel.numpy() < 2.0)
    np.testing.assert_array_equal(bias.numpy(), np.full(4, 2.0, np.float32))


def test_learning_rate_multipliers_scale_only_their_blocks_gradients():
    multipliers = optimization.parse_multipliers(["block0:0.1", "block2:0"], num_blocks=4)
    assert multipliers == {"block0": 0.1, "block2": 0.0}
    paths = ["block0_0/conv/kernel", "block0_1/bn/gamma", "block10_0/x", "block2_1/y", "head/z"]

    class Named:  # A variable's path as the model gives it, without building a model.
        def __init__(self, path):
            self.path = path

    grads = [tf.ones(2) for _ in paths]
    scaled = optimization.scale_gradients(grads, [Named(p) for p in paths], multipliers)
    assert [float(g[0]) for g in scaled] == pytest.approx([0.1, 0.1, 1.0, 0.0, 1.0])
    assert optimization.scale_gradients([None], [Named("block0_0/k")], multipliers) == [None]
    bad_entries = (["block4:0.1"], ["block0:-1"], ["block0:nan"], ["block0"], ["head:0.1"])
    for bad in (*bad_entries, ["block0:1", "block0:2"]):
        with pytest.raises(ValueError, match="--learning_rate_multipliers="):
            optimization.parse_multipliers(bad, num_blocks=4)
