"""The search algorithms on fake trial records: seeds first, random draws, tournaments.

No training and no study: a trial here is its number, state, value and user
attributes, as `algorithms` reads a study's trials.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest

from tvn_tf.models import architecture as arch_lib
from tvn_tf.search import algorithms, records
from tvn_tf.search import space as space_lib

SMALL = space_lib.SpaceConfig(
    resolution=(32, 48),
    frames=(1, 4),
    frame_stride=(1, 8),
    blocks=(2, 4),
    filters=(8, 24),
    repeats=(1, 2),
)
# The first proposals of `--search_seed=0` (tournament, population 4, tournaments of 2,
# seeded with tvn1) and `--search_seed=3` (random) in SMALL, on the fake fitness below.
PINNED_LABELS = [
    (None, "seed tvn1"),
    (None, "random"),
    (None, "random"),
    (None, "random"),
    (1, "block 0 non_local 32->64"),
    (1, "block 2 filters 24->12"),
    (1, "block 2 context_gate 1->0"),
    (2, "block 2 spatial_type depth->avgpool"),
]
PINNED_KEYS = "75a4d0dd120b0a15"  # sha256 of the 16 canonical keys, one a line.
PINNED_RANDOM_KEYS = "40ebbe256afceb9a"


@dataclasses.dataclass
class _State:
    name: str


@dataclasses.dataclass
class FakeTrial:
    """What the algorithms read of an Optuna trial."""

    number: int
    state: _State
    value: float | None
    user_attrs: dict


def trial(number, arch, fitness=None, state="COMPLETE", latency_ms=1.0, parent=None):
    attrs = {
        records.ARCHITECTURE: arch.to_json(),
        records.CANONICAL: space_lib.canonical_key(arch),
        records.PARENT: parent,
        records.LATENCY_MS: latency_ms,
    }
    return FakeTrial(number, _State(state), fitness if state == "COMPLETE" else None, attrs)


def fitness_of(key: str) -> float:
    """A fake fitness, fixed per network."""
    return hashlib.sha256(key.encode()).digest()[0] / 255


def make(name, seed=0, seeds=(), population=4, tournament_size=2, config=SMALL):
    space = space_lib.SearchSpace(config)
    return algorithms.make(
        name,
        space,
        seed=seed,
        seeds=algorithms.load_seeds(seeds, space),
        population=population,
        tournament_size=tournament_size,
    )


def run(algorithm, n):
    """`n` proposals, each recorded as a trial (every 5th infeasible) before the next."""
    trials = []
    for number in range(n):
        proposal = algorithm.propose(number, number, trials)
        key = space_lib.canonical_key(proposal.architecture)
        state = "PRUNED" if number % 5 == 4 else "COMPLETE"
        t = trial(number, proposal.architecture, fitness_of(key), state, parent=proposal.parent)
        t.user_attrs[records.MUTATION] = proposal.mutation
        trials.append(t)
    return trials


def test_algorithms_are_chosen_by_name_from_one_registry():
    assert list(algorithms.ALGORITHMS) == ["tournament", "random"]
    for name, cls in algorithms.ALGORITHMS.items():
        algorithm = make(name)
        assert type(algorithm) is cls and algorithm.name == name
        assert isinstance(algorithm, algorithms.SearchAlgorithm)
    with pytest.raises(ValueError, match="--algorithm='grid'; expected one of tournament, random"):
        make("grid")


@pytest.mark.parametrize("name", list(algorithms.ALGORITHMS))
def test_seed_architectures_come_first_then_the_algorithm(name):
    algorithm = make(name, seeds=("tvn1", "tvn2"))
    trials = run(algorithm, 4)
    assert [t.user_attrs[records.MUTATION] for t in trials[:2]] == ["seed tvn1", "seed tvn2"]
    assert [t.user_attrs[records.PARENT] for t in trials[:2]] == [None, None]
    space = space_lib.SearchSpace(SMALL)
    assert (
        trials[0].user_attrs[records.ARCHITECTURE]
        == space.project(arch_lib.get_architecture("tvn1")).to_json()
    )
    assert [t.user_attrs[records.MUTATION] for t in trials[2:]] == ["random", "random"]


@pytest.mark.parametrize("name", list(algorithms.ALGORITHMS))
def test_a_proposal_is_a_member_of_the_space_new_to_the_study(name):
    space = space_lib.SearchSpace(SMALL)
    trials = run(make(name, population=6, tournament_size=3), 30)
    for t in trials:
        arch = arch_lib.architecture_from_json(t.user_attrs[records.ARCHITECTURE])
        assert space.contains(arch) and space_lib.fits(arch)
    assert len({t.user_attrs[records.CANONICAL] for t in trials}) == 30


def test_a_trial_proposes_the_same_network_on_any_worker():
    """Draws are seeded by (search seed, trial number): the same study, the same proposal."""
    for name in algorithms.ALGORITHMS:
        trials = run(make(name), 8)
        again = make(name).propose(8, 8, trials)
        assert again == make(name).propose(8, 8, list(trials))
        other_seed = make(name, seed=1).propose(8, 8, trials)
        assert other_seed.architecture != again.architecture


def test_random_search_never_mutates():
    trials = run(make("random", population=2, tournament_size=1), 12)
    assert {t.user_attrs[records.MUTATION] for t in trials} == {"random"}
    assert {t.user_attrs[records.PARENT] for t in trials} == {None}


def test_the_tournament_mutates_a_member_of_the_population_after_the_random_phase():
    population = 4
    trials = run(make("tournament", population=population, tournament_size=2), 20)
    assert {t.user_attrs[records.MUTATION] for t in trials[:population]} == {"random"}
    by_number = {t.number: t for t in trials}
    for t in trials[population:]:
        parent = by_number[t.user_attrs[records.PARENT]]
        # Of the best `population` trials completed before it.
        assert parent.number in [p.number for p in records.population_of(trials[: t.number], 4)]
        before = arch_lib.architecture_from_json(parent.user_attrs[records.ARCHITECTURE])
        child = arch_lib.architecture_from_json(t.user_attrs[records.ARCHITECTURE])
        assert len(space_lib.differences(before, child)) == 1
        assert t.user_attrs[records.MUTATION] not in ("random", "")


def test_a_tournament_of_the_whole_population_always_picks_the_best():
    space = space_lib.SearchSpace(SMALL)
    archs = [space.sample(np.random.default_rng(i)) for i in range(4)]
    fitness = [0.2, 0.9, 0.9, 0.5]  # A tie: the faster, then the older wins.
    latency = [1.0, 3.0, 2.0, 1.0]
    trials = [
        trial(i, a, f, latency_ms=m) for i, (a, f, m) in enumerate(zip(archs, fitness, latency))
    ]
    trials.append(trial(4, space.sample(np.random.default_rng(9)), state="PRUNED"))
    algorithm = make("tournament", population=4, tournament_size=4)
    for number in range(5, 15):
        assert algorithm.propose(5, number, trials).parent == 2


def test_the_tournament_draws_at_random_until_a_candidate_trained():
    space = space_lib.SearchSpace(SMALL)
    rng = np.random.default_rng(0)
    pruned = [trial(i, space.sample(rng), state="PRUNED") for i in range(4)]
    proposal = make("tournament", population=2, tournament_size=1).propose(4, 4, pruned)
    assert proposal.mutation == "random" and proposal.parent is None


def test_a_network_the_study_holds_is_proposed_only_after_100_draws_and_says_so():
    algorithm = make("tournament", population=1, tournament_size=1)
    fixed = algorithm.space.smallest()
    draws = []

    def sample(rng):
        draws.append(rng)
        return fixed

    algorithm.space.sample = sample
    algorithm.space.mutate = lambda arch, rng: (sample(rng), "block 0 filters 8->16")
    seen = [trial(0, fixed, 0.5)]
    proposal = algorithm.propose(0, 1, seen)  # The random phase.
    assert proposal.mutation == "random (duplicate)" and len(draws) == 100
    proposal = algorithm.propose(1, 2, seen)  # A tournament of trial 0.
    assert proposal.mutation == "block 0 filters 8->16 (duplicate)" and proposal.parent == 0
    assert proposal.architecture == fixed and len(draws) == 200
    assert algorithm.propose(1, 3, []).mutation == "random"  # New to an empty study.


def test_a_fixed_search_seed_proposes_the_same_networks_in_every_version():
    """The stream of draws is part of a study's meaning: `--search_seed=0` is one search."""
    trials = run(make("tournament", seeds=("tvn1",), population=4, tournament_size=2), 16)
    labels = [(t.user_attrs[records.PARENT], t.user_attrs[records.MUTATION]) for t in trials]
    keys = "\n".join(t.user_attrs[records.CANONICAL] for t in trials)
    assert labels[:8] == PINNED_LABELS
    assert hashlib.sha256(keys.encode()).hexdigest()[:16] == PINNED_KEYS
    random_keys = "\n".join(t.user_attrs[records.CANONICAL] for t in run(make("random", seed=3), 8))
    assert hashlib.sha256(random_keys.encode()).hexdigest()[:16] == PINNED_RANDOM_KEYS
