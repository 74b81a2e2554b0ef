"""A model's memory from its architecture alone (`tvn_tf.models.memory`), and model_info with it.

The arithmetic parameter count is checked against the real Keras models of the
released TVNs; a model far too large for this machine is refused by model_info
before anything is built; and a real out-of-memory during a build is reported,
not turned into Keras's `TypeError` about `ResourceExhaustedError.__init__`.
"""

from __future__ import annotations

import json

from tests.conftest import ALL_OPS
from tests.isolated import run_module_cases, run_python
from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import memory

# 10 blocks of 8192 filters at 224 px: inside LIMITS, ~9.3 billion parameters.
HUGE_BLOCK = {
    "filters": 8192,
    "expand": 1,
    "repeats": 1,
    "spatial_type": "std",
    "spatial_kernel": 3,
    "spatial_stride": 1,
    "temporal_type": "1d",
    "temporal_kernel": 3,
    "temporal_stride": 1,
    "skip": 0,
    "squeeze": 0,
    "context_gate": 0,
    "non_local": 0,
}


def test_the_estimate_is_the_real_models_and_a_real_out_of_memory_is_one_line():
    """Exact parameter counts of the released TVNs (and the all-op-types test network);
    then a real OOM: one 16x16 convolution of 8192 to 8192 channels, a 68 GB weight,
    built under a 40 GB address-space cap (the allocation fails at once on any machine;
    without the cap, a host that overcommits memory would start filling the weight).
    """
    names = [*arch_lib.list_architectures(), ALL_OPS]
    found = run_python(
        f"""
        import json, resource
        resource.setrlimit(resource.RLIMIT_AS, (40 << 30, resource.RLIM_INFINITY))
        import tvn_tf
        from tvn_tf import model_info
        from tvn_tf.models import architecture as arch_lib, memory, tvn

        counts = {{}}
        for name in {names!r}:
            arch = (arch_lib.load_architecture_json(name) if name.endswith(".json")
                    else arch_lib.get_architecture(name))
            counts[name] = tvn.TinyVideoNetwork(arch, 51).count_params()
        wide = dict({HUGE_BLOCK!r}, spatial_type="1std", spatial_kernel=16, temporal_kernel=1)
        arch = arch_lib.architecture_from_json(
            {{"num_frames": 1, "frame_stride": 1, "image_size": 32, "blocks": [wide, wide]}}, "wide"
        )
        out = {{"counts": counts}}
        try:
            model_info._build_within_memory(tvn, arch, 5)
        except ValueError as e:
            out["line"] = str(e)
            out["raised"] = type(e.__context__).__name__  # What the build raised.
            out["out_of_memory"] = memory.out_of_memory(e.__context__) is not None
        print(json.dumps(out))
        """
    )
    for name, count in found["counts"].items():
        arch = (
            arch_lib.load_architecture_json(name)
            if name.endswith(".json")
            else arch_lib.get_architecture(name)
        )
        assert memory.estimate(arch, 51).params == count, name  # Exact.
    # TensorFlow's own error, not Keras's TypeError about ResourceExhaustedError.__init__.
    assert found["raised"] == "ResourceExhaustedError" and found["out_of_memory"], found
    assert found["line"].startswith("wide: ran out of memory building its"), found
    assert "OOM when allocating tensor with shape[16,16,8192,8192]" in found["line"], found


def test_model_info_refuses_what_would_not_fit_before_building_it(tmp_path):
    huge = tmp_path / "huge.json"
    huge.write_text(
        json.dumps(
            {"num_frames": 2, "frame_stride": 1, "image_size": 224, "blocks": [HUGE_BLOCK] * 10}
        )
    )
    cases = [
        ["--model=tvn1", "--width_multiplier=32"],
        [f"--arch_json={huge}"],
        [f"--arch_json={ALL_OPS}", "--num_classes=7"],
    ]
    results = run_module_cases("tvn_tf.model_info", cases)
    for result, name in zip(results[:2], ("tvn1_w32", "huge")):
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"model_info: {name} ("), last
        assert "parameters" in last and "activations of one clip" in last, last
        assert "but this machine has" in last, last
    ok = results[2]
    assert ok.returncode == 0, ok.stderr[-3000:]
    info = json.loads(ok.stdout.strip().splitlines()[-1])
    arch = arch_lib.load_architecture_json(ALL_OPS)
    assert info["total_params"] == memory.estimate(arch, 7).params
