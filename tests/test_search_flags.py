"""The flags of `python -m tvn_tf.search`: defined on demand, defaults from SearchConfig."""

from __future__ import annotations

from tests.isolated import run_python


def test_search_flags_default_to_search_config_and_build_it_by_keyword():
    result = run_python(
        """
        import dataclasses, json
        from absl import flags
        import tvn_tf.search.__main__ as search
        from tvn_tf import train  # Both binaries in one process: no flag is defined yet.
        from tvn_tf.data import dataset as data_lib
        from tvn_tf.search import config as config_lib
        from tvn_tf.search import space as space_lib

        search.define_flags()
        flags.FLAGS(["search", "--model_dir=/runs/s", "--data_dir=/data", "--seed_architectures=tvn1"])
        config = search.config_from_flags()
        expected = config_lib.SearchConfig(
            model_dir="/runs/s", data=data_lib.DataConfig(data_dir="/data"),
            seed_architectures=("tvn1",),
        )
        same = config == expected
        flags.FLAGS(["search", "--model_dir=/runs/s", "--data_dir=/data", "--seed=7",
                     "--search_seed=3", "--learning_rate=0.2", "--frames=2,4", "--optimizer=adamw"])
        config = search.config_from_flags()
        changed = config == dataclasses.replace(
            expected,  # absl keeps --seed_architectures from the first parse.
            search_seed=3,
            space=space_lib.SpaceConfig(frames=(2, 4)),
            proxy=dataclasses.replace(config_lib.PROXY, seed=7, learning_rate=0.2, optimizer="adamw"),
        )
        print(json.dumps([same, changed, flags.FLAGS["seed"].help, flags.FLAGS["search_seed"].help]))
        """
    )
    same, changed, seed_help, search_seed_help = result
    assert same and changed
    # Two seeds, two meanings: each help says which it is and names the other.
    assert "Training seed of every candidate" in seed_help and "train's --seed" in seed_help
    assert "--search_seed" in seed_help
    assert "search's own draws" in search_seed_help and "(--seed)" in search_seed_help
