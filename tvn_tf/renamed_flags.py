"""Flags that changed their name: the old spelling keeps working, with one warning line.

    eval_clips = renamed_flags.value("export", "clips_per_video", "eval_clips",
                                     FLAGS.clips_per_video, FLAGS.eval_clips)

The old flag is defined with default None (so "not given" is visible) and the help
"Deprecated: the old name of --NEW.".
"""

from __future__ import annotations

import sys
from typing import TypeVar

T = TypeVar("T")


def value(binary: str, old: str, new: str, old_value: T | None, new_value: T) -> T:
    """`new_value`, or `old_value` (and a warning naming both flags) if `--old` was given."""
    if old_value is None:
        return new_value
    print(f"{binary}: warning: --{old} is deprecated; use --{new}={old_value}.", file=sys.stderr)
    return old_value
