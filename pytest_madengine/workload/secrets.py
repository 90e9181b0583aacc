"""Secret-looking values: recognised by key, kept out of files that outlive a run.

A key is secret when it contains password/passwd/pass, token, secret (``MAD_SECRETS_*``),
credential, api key or private key, case-insensitively (``HF_TOKEN``, ``DB_PASSWORD``). Specs,
manifests and reports hold the rest; the secret values travel separately (a 0600 file removed
after the run, see ``targets.slurm``) or are replaced by ``<redacted>``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

SECRET_KEY = re.compile(r"pass(word|wd)?|token|secret|credential|api[_-]?key|private[_-]?key", re.IGNORECASE)
REDACTED = "<redacted>"
# JSON-like data: objects, lists and scalars as json.loads returns them.
JsonValue = object


def is_secret_key(key: object) -> bool:
    return bool(SECRET_KEY.search(str(key)))


def scrub_secrets(value: JsonValue) -> JsonValue:
    """A copy of ``value`` with the values of secret-looking keys replaced by ``<redacted>``."""
    if isinstance(value, dict):
        return {k: REDACTED if is_secret_key(k) and v not in ("", None) else scrub_secrets(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_secrets(item) for item in value]
    return value


def split_secrets(value: JsonValue) -> tuple[JsonValue, JsonValue]:
    """``(public, secret)``: ``value`` without its secret-keyed entries, and those entries alone
    (same nesting; ``{}`` when there are none). :func:`merge_secrets` puts them back."""
    if not isinstance(value, dict):
        return value, {}
    public: dict[object, JsonValue] = {}
    secret: dict[object, JsonValue] = {}
    for key, item in value.items():
        if is_secret_key(key) and item not in ("", None):
            secret[key] = item
            continue
        public[key], inner = split_secrets(item)
        if inner:
            secret[key] = inner
    return public, secret


def merge_secrets(public: JsonValue, secret: JsonValue) -> JsonValue:
    """The inverse of :func:`split_secrets`."""
    if not isinstance(public, dict) or not isinstance(secret, dict):
        return secret if secret not in ({}, None) else public
    merged = dict(public)
    for key, item in secret.items():
        merged[key] = merge_secrets(merged.get(key, {}), item)
    return merged


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """An environment without secret-looking variables (what a child that outlives us may keep)."""
    return {key: value for key, value in env.items() if not is_secret_key(key)}


def secret_env(env: Mapping[str, str]) -> dict[str, str]:
    """The secret-looking variables of ``env``."""
    return {key: value for key, value in env.items() if is_secret_key(key)}


def secret_values(value: JsonValue, env: Mapping[str, str] | None = None) -> set[str]:
    """Every non-empty value under a secret-looking key of ``value`` (nested), and of ``env``."""
    _, hidden = split_secrets(value)
    found: set[str] = set(secret_env(env).values()) if env is not None else set()
    stack = [hidden]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item not in ("", None):
            found.add(str(item))
    return {v for v in found if v}


def redact(text: str, values: set[str]) -> str:
    """``text`` with each of ``values`` replaced by ``<redacted>`` (longest first)."""
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text
