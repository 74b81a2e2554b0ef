"""Timing a candidate: the machine lock that keeps timing apart from training."""

from __future__ import annotations

from tests.isolated import start_module
from tvn_tf.search import latency


def test_timing_waits_for_a_training_on_the_same_machine():
    """A training holds the machine lock shared; timing takes it exclusive, so it waits."""
    import time

    child = start_module(
        "-c",
        "import time\nfrom tvn_tf.search import latency\n"
        "with latency.machine_lock(exclusive=False):\n"
        "    print('training', flush=True)\n    time.sleep(3)\n",
    )
    try:
        assert child.stdout.readline().strip() == "training"
        start = time.perf_counter()
        with latency.machine_lock(exclusive=True):
            waited = time.perf_counter() - start
        assert waited > 1.0  # Until the child's 3 s of "training" ended.
    finally:
        child.wait(timeout=60)


def test_a_candidate_is_timed_as_tflite_and_the_steps_are_recorded():
    from tvn_tf.models import tvn
    from tvn_tf.search import space as space_lib

    space = space_lib.SearchSpace(
        space_lib.SpaceConfig((32, 32), (1, 2), (1, 4), (2, 2), (8, 8), (1, 1))
    )
    arch = space.smallest()
    timings = {}
    model = tvn.TinyVideoNetwork(arch, 4)
    ms = latency.measure(model, arch, variant="float32", threads=1, runs=2, timings=timings)
    assert ms > 0 and ms == round(ms, 3)
    assert sorted(timings) == ["convert", "time"] and min(timings.values()) > 0
    clips = latency._calibration_clips(arch, "int8")
    assert len(clips) == 4 and clips[0].shape == (arch.num_frames, 32, 32, 3)
    assert latency._calibration_clips(arch, "float32") is None
