import pytest

from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import scaling

RELEASED = arch_lib.list_architectures()


def test_scaling_multipliers():
    tvn1 = arch_lib.get_architecture("tvn1")
    assert scaling.scale_architecture(tvn1) is tvn1
    scaled = scaling.scale_architecture(tvn1, resolution=0.5, width=0.5, depth=2.0, frames=2.0)
    assert scaled.image_size == 112 and scaled.num_frames == 4
    assert [b.filters for b in scaled.blocks] == [32, 64, 64, 128]
    assert [b.repeats for b in scaled.blocks] == [4, 2, 4, 4]
    assert scaled.frame_stride == tvn1.frame_stride
    assert scaled.name == "tvn1_r0.5_w0.5_d2_f2"


def test_compound_scaling_follows_efficientnet_constants():
    tvn1 = arch_lib.get_architecture("tvn1")
    scaled = scaling.scale_architecture(tvn1, compound=2.0)
    assert scaled.image_size == round(224 * 1.15**2 / 8) * 8  # 296
    assert [b.filters for b in scaled.blocks] == [
        scaling.round_filters(f, 1.1**2) for f in (64, 128, 128, 256)
    ]
    assert [b.repeats for b in scaled.blocks] == [3, 2, 3, 3]  # ceil(r * 1.44)


def test_round_filters_keeps_odd_widths_at_one_and_rounds_to_eight():
    assert scaling.round_filters(348, 1.0) == 348
    assert scaling.round_filters(348, 0.5) == 176
    assert scaling.round_filters(64, 1.21) == 80  # 77.4 rounds up, never down by > 10%
    assert scaling.round_filters(4, 0.5) == 8


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"width": 0}, "'width' is 0; expected a number > 0"),
        ({"resolution": -1}, "'resolution' is -1; expected a number > 0"),
        ({"compound": -0.5}, "'compound' is -0.5; expected a number >= 0"),
    ],
)
def test_scaling_rejects_bad_multipliers(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        scaling.scale_architecture(arch_lib.get_architecture("tvn1"), **kwargs)


def test_released_and_flag_scaled_networks_are_within_bounds():
    for name in RELEASED:
        arch = arch_lib.get_architecture(name)
        for kwargs in ({"width": 2.0}, {"depth": 3.0}, {"resolution": 2.0}, {"compound": 3.0}):
            scaling.scale_architecture(arch, **kwargs)  # Validated: no error.
    with pytest.raises(ValueError, match=r"tvn1_w1000 block 0: field 'filters' is 64000"):
        scaling.scale_architecture(arch_lib.get_architecture("tvn1"), width=1000)
