"""Package discovery: registries → ModelCard records (see MAD-FORMAT.md, "Package layout")."""
from .package import Package, load_package

__all__ = ["Package", "load_package"]
