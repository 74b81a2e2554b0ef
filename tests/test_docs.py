"""The documentation stays true: its commands, flags, paths and links exist.

Every shell command in a ```sh, ```bash or ```console block of README.md,
CONTRIBUTING.md and docs/*.md that runs a project binary (`python -m tvn_tf.X`,
`python tools/x.py`, `tools/x.sh`) must name a module or script that exists, and
every `--flag` it passes must be one that binary defines. The flag names are read
from the binary itself (its import-time flags and its `define_flags()`), in one
child process that forgets each binary's flags and modules before loading the
next (binaries share flag names), never from a list kept here. Every
flagfile in flags/ must parse, absl's own parser on its binary's flags
(search_*.cfg: tvn_tf.search; the others: tvn_tf.train). Every repository path the
docs mention, and every relative link with its #anchor, must exist.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex

import pytest

from tests import isolated

ROOT = isolated.ROOT
DOCS = sorted(["README.md", "CONTRIBUTING.md", *glob.glob("docs/*.md", root_dir=ROOT)])
FLAGFILES = sorted(glob.glob("flags/*.cfg", root_dir=ROOT))
SHELL_LANGUAGES = {"sh", "bash", "console", "shell"}
# Handled by absl's parser itself, not registered as flags.
ABSL_BUILTINS = {"flagfile", "undefok"}
# Paths under these are written by the commands the docs show, not in the repository.
REPOSITORY_ROOTS = ("tvn_tf", "tools", "flags", "docs", "tests")

# The child that reports binaries' flags. For each target it loads the binary as
# `python -m`/`python x.py` would (without running main), defines its flags, lists
# them and parses each flagfile given; then it forgets that binary's flags and
# modules, so the next one defines its own afresh and TensorFlow is imported once.
# A target that fails here is probed again in a child of its own.
_PROBE = """
import importlib, importlib.util, json, sys
import tvn_tf  # Before TensorFlow: the platform set-up.
import tensorflow, keras  # noqa: F401  (imported once, kept for every target)
from absl import app, flags

app.define_help_flags()
base_flags, base_modules = set(flags.FLAGS), set(sys.modules)
results = {}
for target, flagfiles in json.loads(sys.argv[1]).items():
    try:
        if target.endswith(".py"):
            spec = importlib.util.spec_from_file_location("_docs_probe", target)
            module = importlib.util.module_from_spec(spec)
            sys.modules["_docs_probe"] = module
            spec.loader.exec_module(module)
        else:
            name = target
            if importlib.util.find_spec(name).submodule_search_locations is not None:
                name += ".__main__"  # python -m PACKAGE runs its __main__.
            module = importlib.import_module(name)
        if hasattr(module, "define_flags"):
            module.define_flags()
        errors = {}
        for path in flagfiles:
            try:
                flags.FLAGS([target, "--flagfile=" + path])
                errors[path] = None
            except flags.Error as e:
                errors[path] = str(e)
            flags.FLAGS.unparse_flags()
        results[target] = {"flags": sorted(flags.FLAGS), "flagfiles": errors}
    except Exception as e:
        results[target] = {"error": f"{type(e).__name__}: {e}"}
    for name in set(flags.FLAGS) - base_flags:
        delattr(flags.FLAGS, name)
    for name in set(sys.modules) - base_modules:
        del sys.modules[name]
        parent, _, child = name.rpartition(".")
        if parent in base_modules:  # `from tvn_tf import x` reads the package's attribute.
            vars(sys.modules[parent]).pop(child, None)
print(json.dumps(results))
"""


def _probe(plan: dict[str, list[str]]) -> dict[str, dict]:
    """Runs `_PROBE` on `plan` (binary: its flagfiles) in one child; its results."""
    child = isolated.start_module("-c", _PROBE, json.dumps(plan))
    out, err = child.communicate(timeout=600)
    assert child.returncode == 0, f"{sorted(plan)}: flags could not be read:\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def _read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def shell_blocks(text: str) -> list[str]:
    """The bodies of the fenced shell blocks of a markdown text."""
    blocks, lines, language = [], None, None
    for line in text.splitlines():
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and lines is None:
            language, lines = fence.group(1).lower(), []
        elif fence:
            if language in SHELL_LANGUAGES:
                blocks.append("\n".join(lines))
            lines = None
        elif lines is not None:
            lines.append(line)
    return blocks


def simple_commands(block: str) -> list[list[str]]:
    """The simple commands of a shell block: continuations joined, split at && ; | ( )."""
    text = re.sub(r"\\\n", " ", block)
    commands = []
    for line in text.splitlines():
        line = re.sub(r"^\s*\$\s", "", line)  # A console prompt.
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in list(lexer) + [";"]:
            if token and set(token) <= set("&;|()<>"):
                if words:
                    commands.append(words)
                words = []
            else:
                words.append(token)
    return commands


def binary_call(words: list[str]) -> tuple[str, list[str]] | None:
    """(module or script, its arguments) when the command runs a project binary."""
    while words and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) or words[0] in ("do", "then")):
        words = words[1:]  # Environment variables and shell keywords before the command.
    if not words:
        return None
    program, rest = words[0], words[1:]
    if re.search(r"(^|/)python3?$", program):
        if len(rest) >= 2 and rest[0] == "-m" and rest[1].split(".")[0] == "tvn_tf":
            return rest[1], rest[2:]
        if rest and rest[0].endswith(".py"):
            return rest[0], rest[1:]
        return None
    if program.startswith(("tools/", "./tools/")) and program.endswith(".sh"):
        return program.removeprefix("./"), rest
    return None


def flags_passed(args: list[str]) -> list[str]:
    """The names of the `--flag` arguments, up to a bare `--` (what follows is not ours)."""
    names = []
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("--"):
            names.append(arg[2:].split("=", 1)[0])
    return names


def doc_calls() -> list[tuple[str, str, list[str]]]:
    """(doc, binary, flag names) for every project binary run in a doc's shell blocks."""
    calls = []
    for doc in DOCS:
        for block in shell_blocks(_read(doc)):
            for words in simple_commands(block):
                call = binary_call(words)
                if call:
                    calls.append((doc, call[0], flags_passed(call[1])))
    return calls


def flagfile_binary(path: str) -> str:
    return "tvn_tf.search" if os.path.basename(path).startswith("search_") else "tvn_tf.train"


def _exists(target: str) -> bool:
    if target.endswith((".py", ".sh")):
        return os.path.isfile(os.path.join(ROOT, target))
    parts = target.split(".")
    base = os.path.join(ROOT, *parts)
    return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__main__.py"))


def _shell_script_flags(path: str) -> set[str]:
    """The options a shell script's `case` arms accept (`--name=*)`, `--name)`)."""
    return set(re.findall(r"--([A-Za-z0-9_-]+)(?:=\*)?\s*[|)]", _read(path)))


@pytest.fixture(scope="module")
def binary_flags() -> dict[str, dict]:
    """Per binary the docs or flagfiles run: its flags, and how each of its flagfiles parsed."""
    plan: dict[str, list[str]] = {}
    for _, target, _ in doc_calls():
        if _exists(target):
            plan.setdefault(target, [])
    for path in FLAGFILES:
        plan.setdefault(flagfile_binary(path), []).append(path)
    found = {
        target: {"flags": sorted(_shell_script_flags(target)), "flagfiles": {}}
        for target in plan
        if target.endswith(".sh")
    }
    python = {target: files for target, files in plan.items() if target not in found}
    found.update(_probe(python))
    # A binary that could not be loaded beside the others gets a child of its own.
    retry = [target for target in python if "error" in found[target]]
    children = {t: isolated.start_module("-c", _PROBE, json.dumps({t: python[t]})) for t in retry}
    for target, child in children.items():
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, f"{target}: flags could not be read:\n{err[-3000:]}"
        found.update(json.loads(out.strip().splitlines()[-1]))
    errors = [f"{t}: {found[t]['error']}" for t in python if "error" in found[t]]
    assert not errors, "binaries whose flags could not be read:\n" + "\n".join(errors)
    return found


def test_docs_have_commands_to_check():
    binaries = {target for _, target, _ in doc_calls()}
    assert {"tvn_tf.train", "tvn_tf.export", "tvn_tf.search"} <= binaries, binaries


def test_every_documented_binary_exists():
    missing = sorted({f"{doc}: {target}" for doc, target, _ in doc_calls() if not _exists(target)})
    assert not missing, "commands name a module or script that does not exist:\n" + "\n".join(
        missing
    )


def test_every_documented_flag_is_defined_by_its_binary(binary_flags):
    unknown = []
    for doc, target, names in doc_calls():
        if target not in binary_flags:
            continue  # Reported by test_every_documented_binary_exists.
        defined = set(binary_flags[target]["flags"]) | ABSL_BUILTINS
        for name in names:
            negated = name.startswith("no") and name[2:] in defined
            if name not in defined and not negated:
                unknown.append(f"{doc}: {target} --{name}")
    assert not unknown, "flags the binary does not define:\n" + "\n".join(sorted(set(unknown)))


def test_every_flagfile_parses_for_its_binary(binary_flags):
    assert FLAGFILES
    errors = []
    for path in FLAGFILES:
        error = binary_flags[flagfile_binary(path)]["flagfiles"][path]
        if error:
            errors.append(f"{path} ({flagfile_binary(path)}): {error}")
    assert not errors, "\n".join(errors)


def _mentioned_paths(text: str) -> set[str]:
    roots = "|".join(REPOSITORY_ROOTS)
    paths = set()
    for match in re.finditer(rf"(?<![\w/.$-])((?:{roots})/[\w./*<>-]*)", text):
        path = match.group(1).rstrip("./-")
        if "<" not in path:  # `flags/<name>.cfg` is a pattern, not a path.
            paths.add(path)
    return paths


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_mentioned_path_and_link_exists():
    missing = []
    for doc in DOCS:
        text = _read(doc)
        for path in _mentioned_paths(text):
            if not glob.glob(path, root_dir=ROOT):
                missing.append(f"{doc}: {path}")
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", link):
                continue  # A URL.
            target, _, anchor = link.partition("#")
            target = os.path.normpath(os.path.join(os.path.dirname(doc), target)) if target else doc
            if not os.path.exists(os.path.join(ROOT, target)):
                missing.append(f"{doc}: link {link}")
            elif anchor and target.endswith(".md"):
                headings = re.findall(r"^#+\s+(.*)$", _read(target), flags=re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    missing.append(f"{doc}: link {link} (no such heading)")
    assert not missing, "the docs mention what does not exist:\n" + "\n".join(sorted(missing))
