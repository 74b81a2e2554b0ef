"""Scanning a UCF50-style folder tree: `ROOT/<ClassFolder>/v_<Class>_gNN_cMM.avi`.

The label comes from the class folder, never from the file name (UCF50 spells
two classes differently in file names: `Billiards/v_Billards_...`,
`PullUps/v_Pullup_...`). The group and the clip come from the end of the file
name. The class list and the name pattern are parameters, so the sibling
layouts (UCF101, HMDB51) need no new scanner.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

UCF50_CLASSES: tuple[str, ...] = (
    "BaseballPitch",
    "Basketball",
    "BenchPress",
    "Biking",
    "Billiards",
    "BreastStroke",
    "CleanAndJerk",
    "Diving",
    "Drumming",
    "Fencing",
    "GolfSwing",
    "HighJump",
    "HorseRace",
    "HorseRiding",
    "HulaHoop",
    "JavelinThrow",
    "JugglingBalls",
    "JumpRope",
    "JumpingJack",
    "Kayaking",
    "Lunges",
    "MilitaryParade",
    "Mixing",
    "Nunchucks",
    "PizzaTossing",
    "PlayingGuitar",
    "PlayingPiano",
    "PlayingTabla",
    "PlayingViolin",
    "PoleVault",
    "PommelHorse",
    "PullUps",
    "Punch",
    "PushUps",
    "RockClimbingIndoor",
    "RopeClimbing",
    "Rowing",
    "SalsaSpin",
    "SkateBoarding",
    "Skiing",
    "Skijet",
    "SoccerJuggling",
    "Swing",
    "TaiChi",
    "TennisSwing",
    "ThrowDiscus",
    "TrampolineJumping",
    "VolleyballSpiking",
    "WalkingWithDog",
    "YoYo",
)

# Group and clip of a UCF50/UCF101 file name: `..._g08_c03.avi`.
UCF_NAME_PATTERN = re.compile(r"_g(\d\d)_c(\d\d)\.avi$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class VideoFile:
    """One file found under the dataset root.

    Attributes:
      path: Path relative to the root, with `/` separators (the video's id).
      class_name: The class folder, or None for a file outside class folders.
      label: Index of `class_name` in the sorted class list, or None.
      group: Group number from the file name (1-based), or None.
      clip: Clip number within the group, or None.
      problem: Why the file cannot be used, judged from its name and place
        alone; empty when it looks like a video of the dataset.
    """

    path: str
    class_name: str | None
    label: int | None
    group: int | None
    clip: int | None
    problem: str = ""


@dataclasses.dataclass(frozen=True)
class ScanResult:
    """The class list, every file found under a dataset root, and folders skipped.

    Attributes:
      classes: The sorted class list.
      files: Every file found, sorted by path.
      notes: One line per folder not scanned, with the reason (a link to a
        folder already scanned).
    """

    classes: tuple[str, ...]
    files: tuple[VideoFile, ...]
    notes: tuple[str, ...] = ()

    @property
    def videos(self) -> tuple[VideoFile, ...]:
        """The files that look like videos of the dataset (no `problem`)."""
        return tuple(f for f in self.files if not f.problem)

    @property
    def rejected(self) -> tuple[VideoFile, ...]:
        """The files skipped because of their name or place."""
        return tuple(f for f in self.files if f.problem)


def scan_videos(
    root: str | os.PathLike,
    classes: Sequence[str] | None = None,
    name_pattern: re.Pattern = UCF_NAME_PATTERN,
) -> ScanResult:
    """Lists every file under `root` with its label, group and clip.

    Reads directory entries only (no file is opened), so it is fast on the
    full dataset. Hidden files and folders (name starting with `.`) are
    ignored; every other file is returned, usable or with a `problem`. A class
    folder that is a link to a folder already scanned (`self -> .`, or a second
    name for a class) is skipped with a note, so no video is read twice; links
    inside class folders are not followed.

    Args:
      root: The dataset root, holding one folder per class.
      classes: The class names. None takes the class folders found under
        `root`. Labels are indices into the sorted list, so they do not depend
        on the order given or on the file system.
      name_pattern: A regular expression whose groups 1 and 2 are the group
        and the clip number, searched in the file name.

    Returns:
      A `ScanResult` with the sorted class list and the files sorted by path.

    Raises:
      FileNotFoundError: `root` is not a directory.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Dataset root {root!r} is not a directory.")
    files, folders, notes = _top_level(root)
    class_list = tuple(sorted(classes if classes is not None else (e.name for e in folders)))
    label_of = {name: i for i, name in enumerate(class_list)}
    for entry in folders:
        for dirpath, dirnames, filenames in os.walk(entry.path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                files.append(
                    _describe(rel.replace(os.sep, "/"), entry.name, label_of, name_pattern)
                )
    files.sort(key=lambda f: f.path)
    return ScanResult(class_list, tuple(files), tuple(notes))


def _top_level(root: str) -> tuple[list[VideoFile], list[os.DirEntry], list[str]]:
    """The entries directly under `root`: (loose files, class folders to scan, notes).

    A folder that links to one already scanned, to the root or above it is
    skipped with a note. Real folders come first, so that a link is the one
    skipped when both name a folder.
    """
    files, folders, notes = [], [], []
    real_root, scanned = os.path.realpath(root), []  # Real paths of the class folders.
    for entry in sorted(os.scandir(root), key=lambda e: (e.is_symlink(), e.name)):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            files.append(VideoFile(entry.name, None, None, None, None, "not inside a class folder"))
        elif entry.is_dir():
            real = os.path.realpath(entry.path)
            # A link to the root or above it holds every class; one into a class, a part.
            seen = [s for s in scanned if os.path.commonpath([s, real]) in (s, real)]
            if os.path.commonpath([real, real_root]) == real:
                seen = [real_root]
            if seen:
                notes.append(
                    f"skipping folder {entry.name!r}: a link to {real}, which overlaps "
                    f"{seen[0]}, already scanned"
                )
            else:
                scanned.append(real)
                folders.append(entry)
    return files, folders, notes


def _describe(
    path: str, folder: str, label_of: dict[str, int], name_pattern: re.Pattern
) -> VideoFile:
    label = label_of.get(folder)
    match = name_pattern.search(path.rsplit("/", 1)[-1])
    group, clip = (int(match.group(1)), int(match.group(2))) if match else (None, None)
    if label is None:
        problem = f"class folder {folder!r} is not in the class list"
    elif match is None:
        problem = f"file name does not match {name_pattern.pattern!r}"
    elif group < 1:  # UCF50 numbers groups 01-25; no split selects a group 0.
        problem = f"group {match.group(1)} in the file name; groups are numbered from 01"
    else:
        problem = ""
    return VideoFile(path, folder, label, group, clip, problem)
