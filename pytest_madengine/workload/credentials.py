"""A card's ``cred``: its entry of the package's ``credential.json``, as madengine uses it.

``credential.json`` (package root) = ``{"<cred name>": {"username": "...", "password": "...",
"ssh_key_file"?: "...", <any other key>: "..."}, ...}`` (madengine's ``core/auth.py`` format; registry
entries live in the same file, see ``images.registry``). For a card with ``"cred": "<name>"``:

- every key of the entry becomes ``<name>_<KEY>`` (key upper-cased) in the model's container and, where
  the Dockerfile declares the ``ARG``, a build arg (madengine's ``container_runner`` / ``docker_builder``);
- the card's ``url`` is cloned with them (``gitclone``): https with ``username``/``password``, ssh with
  ``username``/``ssh_key_file``.

A card naming a ``cred`` the file lacks (or with no file) is an error, not a run without credentials.
The values never reach a log, a message or a record: ``CardCredential`` hides them from ``repr``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..cards import ModelCard
from ..errors import MadError
from ..jsonfile import read_json, require_object

CREDENTIAL_FILE = "credential.json"


@dataclass(frozen=True)
class CardCredential:
    """One ``credential.json`` entry: its name and its values (hidden from ``repr``)."""

    name: str
    values: dict[str, str] = field(repr=False)

    def env(self) -> dict[str, str]:
        """``{"<name>_<KEY>": value}`` for every key, as madengine names them."""
        return {f"{self.name}_{key.upper()}": value for key, value in self.values.items()}

    def get(self, key: str) -> str:
        return self.values.get(key, "")


def _fix(name: str) -> str:
    return (f'add {{"{name}": {{"username": "...", "password": "..."}}}} to {CREDENTIAL_FILE} at the package '
            "root (keep that file out of version control), or drop 'cred' from the card")


def card_credential(card: ModelCard, package_root: Path) -> CardCredential | None:
    """The card's credential entry; None when the card names none.

    Raises ``MadError`` naming the card and the file when the file, the entry or a value is unusable.
    """
    name = card.cred.strip()
    if not name:
        return None
    where = f"{card.source}: card {card.name!r}, field 'cred'"
    path = Path(package_root) / CREDENTIAL_FILE
    if not path.is_file():
        raise MadError(f"the card needs credentials {name!r} but {CREDENTIAL_FILE} does not exist",
                       where=where, fix=_fix(name))
    data = read_json(path, fix="fix the JSON syntax of credential.json")
    require_object(data, "the file", where=str(path), verb="holds", fix=_fix(name))
    if name not in data:
        raise MadError(f"{CREDENTIAL_FILE} has no entry {name!r}", where=where, fix=_fix(name))
    entry = data[name]
    require_object(entry, f"entry {name!r}", where=str(path), fix=_fix(name))
    bad = [key for key, value in entry.items() if isinstance(value, (dict, list)) or value is None]
    if bad:
        raise MadError(f"entry {name!r} has values that are not text: {', '.join(bad)}", where=str(path),
                       fix="give every key of the entry a string value")
    return CardCredential(name=name, values={str(key): str(value) for key, value in entry.items()})


def credential_env(card: ModelCard, package_root: Path) -> dict[str, str]:
    """``<CRED>_<KEY>`` variables (and build args) of the card; {} without ``cred``."""
    credential = card_credential(card, package_root)
    return credential.env() if credential else {}
