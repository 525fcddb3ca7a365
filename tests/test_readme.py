"""The README against the command line: its synopsis names every command and every option
each command has, and nothing else; every command it shows parses; every command's help
prints its examples whole (each can be pasted as printed); --version; shell completion."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer.main

from tracekit.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
GROUP = typer.main.get_command(app)
CTX = GROUP.make_context("tracekit", ["--help"], resilient_parsing=True)
COMMANDS = {name: GROUP.get_command(CTX, name) for name in GROUP.list_commands(CTX)}


def _options(cmd) -> set[str]:
    return {o for p in cmd.params if p.param_type_name == "option" for o in p.opts + p.secondary_opts if o.startswith("--")} - {"--help"}


def _synopsis() -> list[str]:
    """The entries of the README's synopsis block: a line starting with tracekit and its
    indented continuation lines, joined."""
    block = README.split("## Commands\n\n```\n", 1)[1].split("```", 1)[0]
    entries: list[str] = []
    for line in block.splitlines():
        if line.startswith("tracekit "):
            entries.append(line)
        elif line.strip():
            entries[-1] += " " + line.strip()
    return entries


def test_synopsis_names_every_command_and_option():
    seen: set[str] = set()
    for entry in _synopsis():
        words = entry.split()
        said = set(re.findall(r"--[a-z][\w-]*", entry))
        if words[1].startswith("--"):  # tracekit's own options
            assert said == _options(GROUP), entry
            continue
        for name in words[1].split("|"):
            assert name in COMMANDS, f"README names no such command: {name}"
            seen.add(name)
            have = _options(COMMANDS[name])
            assert said - have == set(), f"{name}: the README's {sorted(said - have)} are not options of it"
            assert have - said == set(), f"{name}: the README's synopsis leaves out {sorted(have - said)}"
    assert set(COMMANDS) - seen == set(), f"commands missing from the README's synopsis: {sorted(set(COMMANDS) - seen)}"


def _readme_commands() -> list[str]:
    """Every command line the README shows outside the synopsis (``$ `` prompts dropped,
    trailing comments cut)."""
    body = README.split("## Commands", 1)[1]
    body = body.split("```", 2)[2]  # after the synopsis block
    lines = []
    for block in re.findall(r"```\n(.*?)```", body, re.S):
        for line in block.splitlines():
            line = line.removeprefix("$ ")
            if line.startswith("tracekit "):
                lines.append(line.split("  #", 1)[0].strip())
    return lines


@pytest.mark.parametrize("line", _readme_commands())
def test_readme_commands_parse(line):
    words = shlex.split(line)
    cmd = COMMANDS[words[1]]
    cmd.make_context(words[1], words[2:])  # a usage error (unknown option, missing value) raises


def _examples(help_text: str) -> list[str]:
    return [ln.strip() for ln in help_text.splitlines() if ln.strip().startswith("tracekit ")
            and ln.startswith(" ") and "Example" not in ln]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_examples_print_whole_and_parse(name):
    doc = COMMANDS[name].help or ""
    examples = _examples(doc)
    assert examples, f"tracekit {name} --help has no example"
    # a narrow terminal: the help text wraps, the examples do not
    env = {**os.environ, "COLUMNS": "50", "TERMINAL_WIDTH": "50"}
    shown = subprocess.run([sys.executable, "-m", "tracekit", name, "--help"], capture_output=True, text=True, env=env).stdout
    printed = [ln.strip() for ln in shown.splitlines()]
    for ex in examples:
        assert ex in printed, f"example printed over several lines: {ex}"
        words = shlex.split(ex)
        assert words[1] == name
        COMMANDS[name].make_context(name, words[2:])


def test_version_is_the_package_version():
    want = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    r = subprocess.run([sys.executable, "-m", "tracekit", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"tracekit {want}"


def test_shell_completion_completes_commands_and_options():
    def complete(words: str) -> list[str]:
        env = {**os.environ, "_TRACEKIT_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - 1)}
        r = subprocess.run([sys.executable, "-m", "tracekit"], capture_output=True, text=True, env=env)
        return r.stdout.split()

    assert complete("tracekit sp") == ["spans"]
    assert "--min-dur" in complete("tracekit spans --mi")
    # --show-completion prints the script of the shell it is run from (found among its
    # ancestor processes): run it from bash, as a user types it, whatever runs the tests
    cmd = f"{shlex.quote(sys.executable)} -m tracekit --show-completion; exit $?"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, start_new_session=True)
    assert r.returncode == 0 and "_TRACEKIT_COMPLETE" in r.stdout and "complete " in r.stdout
