"""See madengine/__init__.py: a shim namespace extended with the real madengine.utils if present."""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
