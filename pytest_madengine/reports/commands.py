"""Command groups of ``python -m pytest_madengine`` that several modules add subcommands to.

``report`` holds ``to-html`` / ``to-email`` (``reports.cli``) and can hold others (the history's
``dashboard``): each module asks :meth:`CommandGroups.group` for the group's subparsers instead of
creating the group itself, and sets ``handler(args, out) -> int`` on each of its parsers.
"""
from __future__ import annotations

import argparse


class CommandGroups:
    """The top-level command groups, created on first request and shared after that."""

    def __init__(self, commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self.commands = commands
        self.groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}

    def group(self, name: str, help_text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        """The subparsers of group ``name`` (``python -m pytest_madengine <name> <action>``)."""
        if name not in self.groups:
            parser = self.commands.add_parser(name, help=help_text)
            self.groups[name] = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        return self.groups[name]
