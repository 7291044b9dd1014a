"""Docs that cannot drift from the parser: the README's command list and the usage text at the
top of ``nin.cli`` name exactly the subcommands ``nin`` has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from nin import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def _parser_commands() -> set[str]:
    (sub,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def _readme_commands(text: str) -> set[str]:
    """The ``nin X`` named in the README's paragraph that starts "On the command line:"."""
    paragraphs = [p for p in text.split("\n\n") if p.startswith("On the command line:")]
    assert len(paragraphs) == 1, "the README should have one paragraph starting 'On the command line:'"
    return set(re.findall(r"`nin ([a-z][a-z-]*)", paragraphs[0]))


def _usage_commands(text: str) -> set[str]:
    """The ``nin X`` that start a line of ``nin.cli``'s usage text (its module docstring)."""
    return set(re.findall(r"^nin ([a-z][a-z-]*)", text, flags=re.MULTILINE))


def test_readme_lists_every_command():
    assert _readme_commands(README.read_text(encoding="utf-8")) == _parser_commands()


def test_cli_usage_lists_every_command():
    assert _usage_commands(cli.__doc__) == _parser_commands()


def test_the_command_finders_see_a_missing_and_an_extra_command():
    readme = "Intro.\n\nOn the command line: `nin models`, `nin train`; `nin COMMAND --help` says more.\n\nNext."
    assert _readme_commands(readme) == {"models", "train"}
    assert _usage_commands("The command.\n\nnin models\nnin train --out DIR\n  nin indented\n") == {"models", "train"}
