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


def test_negative_compound_scales_down_to_the_floor():
    tvn1 = arch_lib.get_architecture("tvn1")
    smaller = scaling.scale_architecture(tvn1, compound=-2.0)
    assert smaller.image_size == round(224 / 1.15**2 / 8) * 8  # 168
    assert [b.filters for b in smaller.blocks] == [56, 104, 104, 208]
    assert [b.repeats for b in smaller.blocks] == [2, 1, 2, 2]  # ceil(r / 1.44)
    tiny = scaling.scale_architecture(tvn1, compound=-40.0)
    assert tiny.image_size == 32
    assert [b.filters for b in tiny.blocks] == [8, 8, 8, 8]
    assert [b.repeats for b in tiny.blocks] == [1, 1, 1, 1]


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
        ({"compound": float("nan")}, "'compound' is nan; expected a finite number"),
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


def test_largest_compound_bisects_to_the_largest_phi_that_fits():
    asked = []

    def too_big(phi):
        asked.append(phi)
        return 2.0 * 1.3**phi > 0.5  # A latency falling with phi; budget 0.5.

    phi, fits = scaling.largest_compound(too_big, step=0.25, lowest=-16)
    assert fits and phi == -5.5  # 2 * 1.3**-5.25 = 0.503; 2 * 1.3**-5.5 = 0.473.
    assert len(asked) <= 9 and asked[:2] == [0.0, -16.0]
    assert scaling.largest_compound(lambda phi: False) == (0.0, True)
    assert scaling.largest_compound(lambda phi: True, step=0.5, lowest=-2) == (-2.0, False)
    with pytest.raises(ValueError, match="expected a step > 0 and a lowest < 0"):
        scaling.largest_compound(lambda phi: True, step=0.25, lowest=0)
