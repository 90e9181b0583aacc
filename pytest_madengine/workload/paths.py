"""Confinement of paths that come from cards, the context and registries.

A card, the context or ``tools.json`` names files by package-relative paths (``scripts``,
``multiple_results``, pre/post scripts, tools' scripts, data provider scripts, Dockerfile
prefixes, ``dockercontext``). Each is resolved (``..`` and symlinks followed) and must stay inside
its root: the package root, or the model's working dir for ``multiple_results``. A path that
leaves it would copy or read a host file the user never offered (e.g. a ``scripts`` of
``/root/.ssh`` would be copied into the container), so it is refused with a MadError naming the
field.

Not confined, by design: host directories the user names explicitly to be mounted (a ``local``
data provider's ``path``, ``mirrorlocal``, context ``docker_mounts``); mounting them is their
purpose.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import MadError


def confined(root: Path, relative: str, *, where: str, field: str, root_name: str = "the package") -> Path:
    """``root / relative`` resolved (symlinks followed), which must lie inside ``root``.

    ``relative``: the value as written (package-relative, may contain ``..``). Returns the
    resolved absolute path (it need not exist). Raises MadError naming ``where`` and ``field``
    when the value is absolute or resolves outside ``root``.
    """
    base = Path(root).resolve()
    text = str(relative)
    if Path(text).is_absolute():
        raise _outside(text, where, field, root_name, "is an absolute path")
    resolved = (base / text).resolve()
    if not resolved.is_relative_to(base):
        raise _outside(text, where, field, root_name, f"resolves to {resolved}, outside {root_name}")
    return resolved


def is_inside(root: Path, path: Path) -> bool:
    """Whether ``path`` (symlinks followed) lies inside ``root``."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def _outside(text: str, where: str, field: str, root_name: str, how: str) -> MadError:
    return MadError(f"{field} {text!r} {how}; paths of a card, the context and tools.json must stay "
                    f"inside {root_name}", where=where,
                    fix=f"give a path relative to {root_name} without '..' that leaves it (and no symlink out "
                        "of it); to give a model host data, declare a 'local' data provider in data.json")
