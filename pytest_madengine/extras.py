"""Optional dependencies: the extra of pytest-madengine that brings each one, and the error naming it.

A session needs only the core dependencies (the HTML pages too: their chart library is vendored);
the Kubernetes target, the MongoDB upload and a PostgreSQL history need the extras ``k8s``, ``mongo``
and ``postgresql`` (``all`` = every one). A feature asked for
without its extra is a :class:`MadError` whose fix is the ``pip install`` line (pytest shows it as a
usage error, the command line as one ``error:`` line).
"""
from __future__ import annotations

import importlib

from .errors import MadError

# The module a feature imports → the extra (``[project.optional-dependencies]``) that installs it.
EXTRA_OF_MODULE: dict[str, str] = {"kubernetes": "k8s", "pymongo": "mongo", "psycopg": "postgresql"}


def install_line(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'pytest-madengine[k8s]'``."""
    return f"pip install 'pytest-madengine[{extra}]'"


def require(module: str, feature: str) -> None:
    """Raise :class:`MadError` naming the extra to install when ``module`` cannot be imported
    (not installed, or broken: installing the extra again fixes both).

    ``module``: a key of :data:`EXTRA_OF_MODULE`; ``feature``: what the user asked for, as they
    wrote it (``--mad-target k8s``, ``report to-html``).
    """
    try:
        importlib.import_module(module)  # the feature imports it next anyway
        return
    except ImportError:
        pass
    extra = EXTRA_OF_MODULE[module]
    raise MadError(f"{feature} needs the Python package {module!r}, which is not installed in this "
                   f"environment (it comes with the extra [{extra}])", fix=install_line(extra))
