"""Import the extension's shared pure-Python code directly, for unit tests."""

import importlib.util
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def load(name, directory="_utils"):
    """Load ``<repo>/<directory>/<name>.py`` as a plain module."""
    key = f"_tests_shared_{directory}_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / directory / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
