"""pytest-madengine's stand-in for the ``madengine`` package, seen only by get_models_json.py.

Only ``madengine.utils.discover_models.CustomModel`` is provided. When the real madengine is also
installed, its other submodules stay importable: the package path is extended with it.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
