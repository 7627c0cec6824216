"""
Watch the Dolphin eXpressWare node state and fire an event when it changes.

Fires ``salt/beacon/<minion id>/expressware/active`` or ``.../inactive`` on every
transition, and once when the minion starts (so the master learns the state of a
node that rebooted and whose minion restarted: the ``rolling`` runner gates on
this when a reboot cut a node's job short). The event data holds the node state
(``expressware.node_state``) and the previous state.

.. code-block:: yaml

    # minion config or pillar
    beacons:
      expressware:
        - interval: 10        # seconds between looks at the node

Each look runs ``dis_services status``, ``dis_diag -V 0`` and an ``rpm`` query;
choose the interval accordingly.
"""

import importlib.util
import logging
import os
import sys

log = logging.getLogger(__name__)

__virtualname__ = "expressware"


def _shared(name):
    """Shared code of this extension: ``<name>.py`` in ``utils/`` or ``_utils/`` beside this module's directory
    (pip install, ``extmods`` after a sync, or a source tree alike; see ``_utils/__init__.py``)."""
    base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for path in (os.path.join(base, sub, name + ".py") for sub in ("utils", "_utils")):
        if os.path.isfile(path):
            # Keyed by its modification time too: a long-lived process (a master worker)
            # takes up a file changed by a sync or an upgrade.
            key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
            if key not in sys.modules:
                spec = importlib.util.spec_from_file_location(key, path)
                sys.modules[key] = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(sys.modules[key])
            return sys.modules[key]
    raise ImportError(f"{name}.py not found in {base}/utils or {base}/_utils (sync it: saltutil.sync_all)")


try:
    protocol = _shared("expressware_protocol")
except ImportError as _exc:  # reported by __virtual__
    protocol = None
    _IMPORT_ERROR = str(_exc)

_LAST = "expressware.beacon.last_state"


def __virtual__():
    if protocol is None:
        return False, f"expressware beacon: {_IMPORT_ERROR}"
    if "expressware.node_state" not in __salt__:
        return False, "the expressware beacon needs the expressware execution module"
    return __virtualname__


def validate(config):
    """Accept an empty configuration or one with only ``interval``."""
    if not isinstance(config, list):
        return False, "configuration for the expressware beacon must be a list"
    allowed = {"interval", "disable_during_state_run"}
    for item in config:
        if not isinstance(item, dict) or set(item) - allowed:
            return False, f"the expressware beacon takes only {', '.join(sorted(allowed))}, not {item!r}"
    return True, "valid beacon configuration"


def beacon(config):  # pylint: disable=unused-argument
    """
    Look at the node; return one event when its state changed since the last look.

    CLI Example (beacons are configured, not called):

    .. code-block:: bash

        salt '*' beacons.add expressware "[{'interval': 10}]"
    """
    try:
        state = __salt__["expressware.node_state"]()
    except Exception as exc:  # pylint: disable=broad-except
        # A node whose tools do not answer is not active; say so once.
        state = {"state": "inactive", "active": False, "reasons": [f"node state unknown: {exc}"]}
    previous = __context__.get(_LAST)
    __context__[_LAST] = state["state"]
    if previous == state["state"]:
        return []
    log.info("eXpressWare node state %s -> %s", previous, state["state"])
    return [protocol.beacon_event(state, previous)]
