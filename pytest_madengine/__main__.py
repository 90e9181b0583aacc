"""``python -m pytest_madengine``: commands around a MAD package's results (history, reports)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the command; the exit status."""
    from .history import cli

    parser = argparse.ArgumentParser(prog="python -m pytest_madengine",
                                     description="Results of MAD package sessions run by pytest-madengine.")
    commands = parser.add_subparsers(dest="command", required=True)
    cli.add_commands(commands)
    return cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
