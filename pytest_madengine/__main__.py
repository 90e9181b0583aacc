"""``python -m pytest_madengine`` (console command ``pytest-madengine``): commands around a MAD
package's results.

Each command module registers its commands with ``add_commands(groups)`` (groups such as
``report`` are shared through ``reports.commands.CommandGroups``) and sets a ``handler`` on each
parser (``handler(args, out) -> exit status``), which ``reports.cli.run`` calls.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None, prog: str = "python -m pytest_madengine") -> int:
    """Parse ``argv`` (default: the command line) and run the command; the exit status.
    ``prog``: how usage lines name the program."""
    from .history import cli as history_cli
    from .reports import cli as reports_cli
    from .reports.commands import CommandGroups

    parser = argparse.ArgumentParser(prog=prog,
                                     description="Results of MAD package sessions run by pytest-madengine.")
    groups = CommandGroups(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    reports_cli.add_commands(groups)
    history_cli.add_commands(groups)
    given = list(sys.argv[1:] if argv is None else argv)
    return reports_cli.run(parser.parse_args(reports_cli.with_default_actions(given)))


def console_main() -> int:
    """The ``pytest-madengine`` console command (``[project.scripts]``)."""
    return main(prog="pytest-madengine")


if __name__ == "__main__":
    sys.exit(main())
