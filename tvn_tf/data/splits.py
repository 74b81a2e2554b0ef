"""Group-wise splits: no group is ever on two sides of a split.

Clips of one UCF50 group are cut from the same source video (same actor,
background and viewpoint), so a random split over clips leaks; every split
here is a split over groups. Validation groups are whole training groups.
"""

from __future__ import annotations

import dataclasses

UCF50_NUM_GROUPS = 25


@dataclasses.dataclass(frozen=True)
class GroupSplit:
    """Which groups train, validate and test.

    Attributes:
      train: Groups to train on.
      validation: Groups held out from training for model selection.
      test: Groups to report on.
    """

    train: tuple[int, ...]
    validation: tuple[int, ...]
    test: tuple[int, ...]

    def __post_init__(self):
        sides = [set(self.train), set(self.validation), set(self.test)]
        if (sides[0] & sides[1]) or (sides[0] & sides[2]) or (sides[1] & sides[2]):
            raise ValueError(f"A group is on two sides of the split: {self}.")


def leave_one_group_out(
    fold: int, num_groups: int = UCF50_NUM_GROUPS, num_validation_groups: int = 0
) -> GroupSplit:
    """The standard UCF50 protocol: test on group `fold`, train on the rest.

    Args:
      fold: The test group, 1..num_groups.
      num_groups: Number of groups (25 for UCF50).
      num_validation_groups: How many training groups to hold out for
        validation: the ones following the test group, cyclically.

    Returns:
      The `GroupSplit`.

    Example:
      >>> leave_one_group_out(25, num_validation_groups=2).validation
      (1, 2)
    """
    _check_range("fold", fold, 1, num_groups)
    return _split_with_validation((fold,), num_groups, num_validation_groups)


def group_k_fold(
    fold: int,
    num_folds: int = 5,
    num_groups: int = UCF50_NUM_GROUPS,
    num_validation_groups: int = 0,
) -> GroupSplit:
    """K-fold over contiguous blocks of groups (UCF50: 1-5, 6-10, ...).

    Args:
      fold: The test block, 1..num_folds.
      num_folds: Number of blocks; `num_groups` must be at least this.
      num_groups: Number of groups (25 for UCF50).
      num_validation_groups: How many training groups to hold out for
        validation: the ones following the test block, cyclically.

    Returns:
      The `GroupSplit`.
    """
    _check_range("num_folds", num_folds, 2, num_groups)
    _check_range("fold", fold, 1, num_folds)
    # Blocks differ in size by at most one group when num_folds does not divide.
    bounds = [1 + (i * num_groups) // num_folds for i in range(num_folds + 1)]
    test = tuple(range(bounds[fold - 1], bounds[fold]))
    return _split_with_validation(test, num_groups, num_validation_groups)


def _split_with_validation(
    test: tuple[int, ...], num_groups: int, num_validation_groups: int
) -> GroupSplit:
    rest = num_groups - len(test)
    _check_range("num_validation_groups", num_validation_groups, 0, rest - 1)
    validation = tuple((test[-1] + i) % num_groups + 1 for i in range(num_validation_groups))
    train = tuple(g for g in range(1, num_groups + 1) if g not in test and g not in validation)
    return GroupSplit(train=train, validation=validation, test=test)


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}.")
