"""The search algorithms: what network the study's next trial evaluates.

    algorithm = make("tournament", space, seed=0, population=200, tournament_size=50)
    proposal = algorithm.propose(rank, trial.number, study.get_trials())

Every algorithm answers `propose(rank, number, trials)` for the study's
`rank`-th counted trial (number `number`), given the trials so far, as
Optuna's samplers answer for theirs. The first proposals are the seed
architectures (`--seed_architectures`), one per rank, then the algorithm's
own. A trial's random draws are seeded by `(seed, trial number)`, so any
worker proposes the same network for the same trial. A proposal avoids the
networks the study already holds (up to 100 draws).

- `RandomSearch` ("random"): a draw from the space's priors, always.
- `TournamentEvolution` ("tournament", the paper's): random draws while
  `rank < population`; then a mutation of the best of `tournament_size`
  trials drawn from the population, the best `population` completed trials.

`ALGORITHMS` maps each name to its class; `make` builds one by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from absl import logging

from tvn_tf.models import architecture as arch_lib
from tvn_tf.search import records
from tvn_tf.search import space as space_lib

# Draws per proposal before a network the study already holds is taken anyway.
_DRAWS = 100


@dataclasses.dataclass(frozen=True)
class Proposal:
    """A trial's candidate: the network, its parent's trial number, and how it was made."""

    architecture: arch_lib.Architecture
    parent: int | None
    mutation: str


class SearchAlgorithm:
    """Proposes each trial's network: the seeds first, then the algorithm's draws (`_draw`).

    Args:
      space: The searched space.
      seed: The search's seed (`--search_seed`).
      seeds: `(name, architecture)` of each seed architecture, in order, already
        in the space (`load_seeds`).
      population: The population size (`--population`).
      tournament_size: Networks drawn per tournament (`--tournament_size`).
    """

    name: ClassVar[str]

    def __init__(
        self,
        space: space_lib.SearchSpace,
        *,
        seed: int,
        seeds: Sequence[tuple[str, arch_lib.Architecture]] = (),
        population: int,
        tournament_size: int,
    ):
        self.space, self.seed, self.seeds = space, seed, list(seeds)
        self.population, self.tournament_size = population, tournament_size

    def propose(self, rank: int, number: int, trials) -> Proposal:
        """The candidate of the study's `rank`-th counted trial, numbered `number`.

        Raises:
          ValueError: the space yields no network that fits (`SearchSpace.sample`).
        """
        rng = np.random.default_rng([self.seed, number])
        if rank < len(self.seeds):
            name, arch = self.seeds[rank]
            return Proposal(arch, None, f"seed {name}")
        seen = {t.user_attrs.get(records.CANONICAL) for t in trials}
        parents = self._parents(rank, trials)
        for _ in range(_DRAWS):
            proposal = self._draw(rng, parents)
            if space_lib.canonical_key(proposal.architecture) not in seen:
                return proposal
        return dataclasses.replace(proposal, mutation=proposal.mutation + " (duplicate)")

    def _parents(self, rank: int, trials) -> list:
        """The trials the `rank`-th proposal may descend from (empty: a random draw)."""
        del rank, trials
        return []

    def _draw(self, rng: np.random.Generator, parents: list) -> Proposal:
        """One network: a mutation of one of `parents`, or a random draw if there are none."""
        del parents
        return Proposal(self.space.sample(rng), None, "random")


class RandomSearch(SearchAlgorithm):
    """Random search: every proposal a draw from the space's priors."""

    name = "random"


class TournamentEvolution(SearchAlgorithm):
    """Tournament selection with one-part mutations, after a random first population."""

    name = "tournament"

    def _parents(self, rank: int, trials) -> list:
        """The population (best first) once the random phase is over, else none."""
        if rank < self.population:
            return []
        return records.population_of(trials, self.population)

    def _draw(self, rng: np.random.Generator, parents: list) -> Proposal:
        """A mutation of the tournament's winner (the best of `tournament_size` drawn)."""
        if not parents:  # The random phase, or nothing trained yet.
            return super()._draw(rng, parents)
        size = min(self.tournament_size, len(parents))
        drawn = rng.choice(len(parents), size=size, replace=False)
        parent = parents[int(min(drawn))]  # Sorted best first.
        base = arch_lib.architecture_from_stored_json(parent.user_attrs[records.ARCHITECTURE])
        arch, mutation = self.space.mutate(base, rng)
        return Proposal(arch, parent.number, mutation)


ALGORITHMS: dict[str, type[SearchAlgorithm]] = {
    cls.name: cls for cls in (TournamentEvolution, RandomSearch)
}


def make(
    name: str,
    space: space_lib.SearchSpace,
    *,
    seed: int,
    seeds: Sequence[tuple[str, arch_lib.Architecture]] = (),
    population: int,
    tournament_size: int,
) -> SearchAlgorithm:
    """The algorithm called `name` (a key of `ALGORITHMS`).

    Raises:
      ValueError: no algorithm of that name.
    """
    if name not in ALGORITHMS:
        raise ValueError(f"--algorithm={name!r}; expected one of {', '.join(ALGORITHMS)}.")
    return ALGORITHMS[name](
        space, seed=seed, seeds=seeds, population=population, tournament_size=tournament_size
    )


def load_seeds(
    names: Sequence[str], space: space_lib.SearchSpace
) -> list[tuple[str, arch_lib.Architecture]]:
    """Released networks (or JSON files) moved into the space (`SearchSpace.project`).

    What the move changed is logged as a warning, one line per seed.

    Raises:
      ValueError: a name that is no released network (naming --seed_architectures).
    """
    out = []
    for name in names:
        if name.endswith(".json"):
            arch = arch_lib.load_architecture_json(name)
        else:
            try:
                arch = arch_lib.get_architecture(name)
            except ValueError as e:
                raise ValueError(f"--seed_architectures: {e}") from None
        projected = space.project(arch)
        changes = space.changes(arch, projected)
        if changes:
            logging.warning(
                "--seed_architectures: %s moved into the search space: %s.",
                name,
                ", ".join(changes),
            )
        out.append((name, projected))
    return out
