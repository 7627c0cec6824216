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

import logging

log = logging.getLogger(__name__)

__virtualname__ = "expressware"

_LAST = "expressware.beacon.last_state"


def __virtual__():
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
    return [{"tag": state["state"], "node_state": state, "previous": previous}]
