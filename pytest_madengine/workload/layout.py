"""Where things are inside a model's container, as madengine lays it out (MAD scripts rely on it).

- ``WORKSPACE``: the package root (madengine mounts the MAD checkout there);
- ``MODEL_DIR``: the model's working dir, a fresh copy of the card's scripts dir; ``..`` of it is
  the package root, so scripts that reach ``../scripts/common`` keep working.
"""
from __future__ import annotations

WORKSPACE = "/myworkspace"
MODEL_DIR_NAME = "run_directory"
MODEL_DIR = f"{WORKSPACE}/{MODEL_DIR_NAME}"
