"""pytest-madengine: AI/ML benchmark models of a MAD package as pytest tests."""

__version__ = "0.1.0"
