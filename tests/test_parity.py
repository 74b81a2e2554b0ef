"""Parity with the original TF1 code: parameters, FLOPs and feature shapes.

The targets in `testdata/original_tvn_figures.json` were measured by running
the released TensorFlow 1 code on one clip.
"""

import json
import pathlib

import numpy as np
import pytest

from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import flops as flops_lib
from tvn_tf.models import tvn

FIGURES = json.loads(
    (pathlib.Path(__file__).parent / "testdata" / "original_tvn_figures.json").read_text()
)["models"]
CASES = [
    (name, classes)
    for name, figures in sorted(FIGURES.items())
    for classes in (50, 339)
    if f"num_classes_{classes}" in figures
]


@pytest.mark.parametrize("name, num_classes", CASES)
def test_released_model_matches_original(name, num_classes):
    expected = FIGURES[name][f"num_classes_{num_classes}"]
    model = tvn.TinyVideoNetwork(arch_lib.get_architecture(name), num_classes)

    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == expected["trainable_params"]
    assert model.count_params() == expected["total_params"]
    assert tvn.feature_shape(model) == expected["feature_shape"]

    count = flops_lib.count_flops(model)
    assert count.forward == pytest.approx(expected["flops"], rel=0.02)
    # With the initializers the original's profile also priced, the count is exact.
    assert count.with_initializers == expected["flops"]
    assert sum(f for _, f in count.per_layer) == count.forward
