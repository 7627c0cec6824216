"""Entry point for ``salt.loader``: where Salt finds this extension's loader modules."""

import importlib

# Salt loader type -> sub-package holding the loader modules of that type.
_TYPES = ("modules", "states", "runners", "beacons")


def get_dirs():
    """Return ``{ext_type: [directory, ...]}`` for Salt's loader.

    Reading each sub-package's ``__path__`` (rather than joining paths to this
    file) keeps regular and editable installs working alike.
    """
    dirs = {}
    for ext_type in _TYPES:
        package = importlib.import_module(f"saltext.expressware.{ext_type}")
        dirs[ext_type] = [str(path) for path in package.__path__]
    return dirs
