"""Import the extension's shared pure-Python code directly, for unit tests."""

import importlib.util
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def load(name, directory="_utils"):
    """Load ``<repo>/<directory>/<name>.py`` as a plain module. A shared module (``_utils``) is loaded under the key
    its siblings' ``_sibling()`` uses: one module object (one ``RolloutError`` class) whoever loads it first."""
    key = f"_tests_shared_{directory}_{name}"
    if directory == "_utils":
        path = str(REPO / directory / f"{name}.py")
        key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / directory / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
