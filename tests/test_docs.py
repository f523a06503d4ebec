"""The docs are tested too: every command and option is in the README, the README's two
set-up commands are the ones CI runs, and the example configuration parses."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from baseliner import config
from baseliner.cli import build_parser

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                for inner in sub._actions:
                    if isinstance(inner, argparse._SubParsersAction):
                        for inner_name, leaf in inner.choices.items():
                            found[f"{name} {inner_name}"] = leaf
    return found


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings
            if o.startswith("--") and o != "--help"]


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_has_help_and_a_readme_section(command):
    parser = _commands()[command]
    assert parser.description or parser.format_help()
    assert f"baseliner {command}" in README, f"README lacks 'baseliner {command}'"


@pytest.mark.parametrize(
    ("command", "option"),
    sorted({(c, o) for c, p in _commands().items() for o in _options(p)}),
)
def test_every_option_is_in_the_readme(command, option):
    assert f"`{option}" in README, f"README lacks {option} of {command}"


def test_every_global_option_is_in_the_readme():
    for option in _options(build_parser()):
        assert f"`{option}" in README, option


def test_ci_runs_the_readme_test_command():
    quick_start = README.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", quick_start, re.S).group(1).strip().splitlines()
    assert len(block) == 2, "the README's set-up is two commands"
    assert "baseliner demo" in block[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert block[1] in ci.splitlines()


def test_example_configuration_parses_with_every_section_uncommented():
    text = (ROOT / "config" / "baseliner.example.toml").read_text()
    uncommented = re.sub(r"(?m)^# (\[|[a-z_]+ = )", r"\1", text)
    loaded = config.parse(__import__("tomllib").loads(uncommented), "example")
    assert loaded.aws and loaded.gcp and loaded.azure
    assert loaded.rules and loaded.daemon and loaded.alerts
    assert loaded.store.keep_last and loaded.store.keep_daily
