"""Every shipped flagfile (flags/*.cfg) runs end to end, as its own strategy and split say.

A recipe is run as written, with only the data, the sizes and the step counts
overridden (`SCALED_DOWN`): the session's tiny demo data (4 classes x 5 groups),
32x32 input at a quarter of the width, a few steps of a few clips. Its split
flags stay (UCF50's `--split=logo --fold=1 --num_validation_groups=2` works on
5 groups). Training recipes train (and test); three are evaluated again by
`tvn_tf.evaluate` (`EVALUATED`); `tvn1.cfg` is exported too
(float32 only, a few parity clips: an export takes 20-90 s here, and
tests/test_export.py exports a model with every op type); `search_*.cfg` run
a two-candidate search. New flagfiles are picked up by the glob.

Each binary runs every recipe in one child process (`run_module_cases`), so
TensorFlow is imported once per binary, not once per recipe. Recipes that differ only
in what the test overrides (`motion.cfg` is `demo.cfg` on other data) are the same
command here: it runs once and each of them is checked against it.
"""

from __future__ import annotations

import glob
import json
import os

import pytest

from tests.isolated import ROOT, run_module_cases

RECIPES = sorted(glob.glob(os.path.join(ROOT, "flags", "*.cfg")))
SEARCH_RECIPES = [r for r in RECIPES if os.path.basename(r).startswith("search_")]
TRAIN_RECIPES = [r for r in RECIPES if r not in SEARCH_RECIPES]

# What every training recipe is run with on top of its flagfile: data, sizes, steps.
SCALED_DOWN = [
    "--image_size=32",
    "--width_multiplier=0.25",
    "--train_steps=2",
    "--batch_size=4",
    "--warmup_epochs=0",
    "--checkpoint_every=1",
    "--eval_clips=1",
]
# Fewer repeats of each block where no flag names a repeat (--aux_classifiers does):
# tracing the training step of a deep recipe (tvn2: 26 block applications) takes
# most of its run here.
SHALLOW = "--depth_multiplier=0.25"
# A search recipe's space, budget and proxy, scaled down the same way (two candidates).
SEARCH_SCALED_DOWN = [
    "--resolution=32,32",
    "--frames=1,2",
    "--frame_stride=1,4",
    "--blocks=2,3",
    "--filters=8,16",
    "--repeats=1,1",
    "--num_trials=2",
    # A tournament's population must be smaller than its budget, and its tournaments no
    # larger than its population: one random candidate, then one mutation of it.
    "--population=1",
    "--tournament_size=1",
    "--train_steps=2",
    "--batch_size=4",
    "--warmup_epochs=0",
    "--eval_clips=1",
    "--latency_runs=2",
    # A loaded 2-core test machine times a candidate anywhere: no latency limit.
    "--max_latency_ms=0",
    "--final_epochs=0",
    "--noprogress",
]


EXPORTED = "tvn1"
# The runs `tvn_tf.evaluate` reads again: the demo recipe (auxiliary heads, one crop),
# TVN-1's (mirrored, three crops) and its bfloat16 one. The other released TVNs'
# recipes are TVN-1's evaluation on another architecture (their training still
# evaluates them on the test groups: metrics.json).
EVALUATED = ("demo", "tvn1", "tvn1_gpu")


def _name(recipe: str) -> str:
    return os.path.splitext(os.path.basename(recipe))[0]


def recipe_flags(path: str) -> dict[str, str]:
    """A flagfile's flags as absl reads them: nested --flagfile lines in place, the last one wins."""
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("--"):
                continue
            name, _, value = line[2:].partition("=")
            if name == "flagfile":
                values.update(recipe_flags(os.path.join(ROOT, value)))
            else:
                values[name] = value
    return values


# Flags every training recipe's run sets for itself: a recipe's own values of these
# do not reach the run.
OVERRIDDEN = {"data_dir", "model_dir"} | {flag[2:].partition("=")[0] for flag in SCALED_DOWN}


def _run_name(recipe: str) -> str:
    """The first training recipe whose run is this one's: the same flags once overridden."""
    own = {k: v for k, v in recipe_flags(recipe).items() if k not in OVERRIDDEN}
    for other in TRAIN_RECIPES:
        flags_ = {k: v for k, v in recipe_flags(other).items() if k not in OVERRIDDEN}
        if flags_ == own:
            return _name(other)
    raise AssertionError(recipe)


def test_recipes_are_found():
    names = [_name(r) for r in RECIPES]
    assert "tvn1" in names and "demo" in names and "search_demo" in names, names
    assert set(EVALUATED) <= set(names)
    assert _run_name(os.path.join(ROOT, "flags", "motion.cfg")) == "demo"


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """Each distinct training run trained and evaluated (`EXPORTED` exported): name -> results."""
    root = tmp_path_factory.mktemp("recipes")
    recipes = {_name(r): r for r in TRAIN_RECIPES if _run_name(r) == _name(r)}
    runs = {name: str(root / name) for name in recipes}
    train = run_module_cases(
        "tvn_tf.train",
        [
            [
                f"--flagfile={r}",
                f"--data_dir={tiny_data['records']}",
                f"--model_dir={runs[name]}",
            ]
            + SCALED_DOWN
            + ([] if recipe_flags(r).get("aux_classifiers") else [SHALLOW])
            for name, r in recipes.items()
        ],
    )
    evaluate = iter(
        run_module_cases(
            "tvn_tf.evaluate", [[f"--model_dir={runs[name]}"] for name in runs if name in EVALUATED]
        )
    )
    export = run_module_cases(
        "tvn_tf.export",
        [
            [
                f"--model_dir={d}",
                f"--output_dir={d}_export",
                "--variants=float32",
                "--calibration_clips=1",
                "--augmented_calibration_clips=0",
                "--parity_clips=2",
                "--eval_clips=1",
                "--latency_runs=1",
            ]
            for name, d in runs.items()
            if name == EXPORTED
        ],
    )
    exports = iter(export)
    return {
        name: {
            "dir": runs[name],
            "train": t,
            "evaluate": next(evaluate) if name in EVALUATED else None,
            "export": next(exports) if name == EXPORTED else None,
        }
        for name, t in zip(runs, train)
    }


@pytest.mark.parametrize("recipe", TRAIN_RECIPES, ids=_name)
def test_training_recipe_trains_evaluates_and_exports(recipe, trained):
    run = trained[_run_name(recipe)]
    assert run["train"].returncode == 0, run["train"].stderr[-3000:]
    metrics = json.loads(open(os.path.join(run["dir"], "metrics.json")).read())
    assert metrics["step"] == 2 and metrics["num_test_videos"] > 0
    recorded = json.loads(open(os.path.join(run["dir"], "train_config.json")).read())
    written = recipe_flags(recipe)
    for flag in ("strategy", "mixed_precision", "optimizer", "split", "fold"):
        if flag in written:
            side = "data" if flag in ("split", "fold") else "train"
            assert str(recorded[side][flag]) == written[flag], flag

    if run["evaluate"] is not None:
        assert run["evaluate"].returncode == 0, run["evaluate"].stderr[-3000:]
        assert json.loads(run["evaluate"].stdout.strip().splitlines()[-1])["step"] == 2

    if run["export"] is None:
        return
    assert run["export"].returncode == 0, run["export"].stderr[-3000:]
    exported = os.path.join(f"{run['dir']}_export")
    assert os.path.getsize(os.path.join(exported, "model_float32.tflite")) > 0
    assert os.path.isdir(os.path.join(exported, "saved_model"))


@pytest.fixture(scope="module")
def searched(tiny_data, tmp_path_factory):
    """Every search recipe run as a two-candidate search: name -> (folder, result)."""
    root = tmp_path_factory.mktemp("search_recipes")
    runs = {_name(r): str(root / _name(r)) for r in SEARCH_RECIPES}
    results = run_module_cases(
        "tvn_tf.search",
        [
            [
                f"--flagfile={r}",
                f"--data_dir={tiny_data['records']}",
                f"--model_dir={runs[_name(r)]}",
            ]
            + SEARCH_SCALED_DOWN
            for r in SEARCH_RECIPES
        ],
    )
    return {name: {"dir": runs[name], "result": r} for name, r in zip(runs, results)}


@pytest.mark.parametrize("recipe", SEARCH_RECIPES, ids=_name)
def test_search_recipe_searches(recipe, searched):
    run = searched[_name(recipe)]
    assert run["result"].returncode == 0, run["result"].stderr[-3000:]
    summary = json.loads(run["result"].stdout.strip().splitlines()[-1])
    assert summary["trials"] == 2, summary
    assert os.path.exists(os.path.join(run["dir"], "trials.csv"))
