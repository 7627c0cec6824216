"""
The cluster-wide update lease: at most one Cluster Node of a cluster disrupted at a time.

The ``expressware.installed`` state takes the lease before it stops anything on a
node and gives it back only when the node is active again. While another node
holds it, the state waits (bounded) and then defers. A lease held by a node whose
update failed is **never released on a timer**: the cluster stays at "one node
down" until the operator has looked at the node and releases the lease:

.. code-block:: bash

    salt-run expressware_lease.show                   # holders and ages of all leases
    salt-run expressware_lease.show cluster=db1
    salt-run expressware_lease.release cluster=db1    # operator: free it, whoever holds it

Minions reach ``acquire``/``release`` through ``publish.runner``, which needs
``peer_run`` in the master configuration:

.. code-block:: yaml

    peer_run:
      .*:
        - expressware_lease.acquire
        - expressware_lease.release
        - expressware_lease.show

When a minion calls, the holder is the minion's authenticated id (a minion cannot
release another minion's lease). The ``rolling`` runner holds the same lease for
the whole of a rollout, so a highstate cannot take a second node down meanwhile.

Leases are files under ``<master cachedir>/expressware/leases/``, changed under an
exclusive file lock and replaced atomically.

``wait_gate`` is the other thing minions ask here: a job the ``rolling`` runner
prepared ahead of its node's turn asks for its gate's decision (``go`` or
``cancel``); the question waits on the master (at most ``wait`` seconds) until the
runner decides, so the node starts within milliseconds of the decision. It needs
``expressware_lease.wait_gate`` in ``peer_run`` too (``expressware_lease.*`` covers
both); without it the prepared job waits on its own event bus for the runner's
``event.fire`` instead, a publish later.
"""

import importlib.util
import os
import re
import sys
import time

import salt.utils.event
from salt.exceptions import SaltInvocationError

__virtualname__ = "expressware_lease"

GATE_DECIDED = "expressware/gate/decided"
GATE_TAKEN = "expressware/gate/taken"
_GATE_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")


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
    store = _shared("expressware_store")
except ImportError as _exc:  # reported by __virtual__
    store = None
    _IMPORT_ERROR = str(_exc)


_refusing = store.refusing if store else (lambda func: func)


def __virtual__():
    if store is None:
        return False, f"expressware_lease: {_IMPORT_ERROR}"
    return __virtualname__


def _leases():
    return store.LeaseStore(os.path.join(__opts__["cachedir"], "expressware", "leases"))


def _gates():
    return store.GateStore(os.path.join(__opts__["cachedir"], "expressware", "gates"))


def _caller():
    """The authenticated minion id for ``publish.runner`` calls, else None (salt-run)."""
    # The master answers publish.runner with its own opts and ``id`` set to the
    # calling minion, whose key it has accepted; salt-run keeps the master's id.
    caller = __opts__.get("id")
    if caller and os.path.isfile(os.path.join(__opts__.get("pki_dir", ""), "minions", caller)):
        return caller
    return None


def _cluster(cluster):
    try:
        return store.check_name(cluster, "cluster")
    except ValueError as exc:
        raise SaltInvocationError(str(exc)) from exc


@_refusing
def acquire(cluster="default", holder=None, purpose=None):
    """
    Take the update lease of ``cluster`` for ``holder``.

    Returns ``{"granted": True, ...}`` when the lease was free or already held by
    ``holder``, else ``{"granted": False, "holder": ..., "age": seconds, ...}``.
    Called from a minion (``publish.runner``) the holder is always that minion.

    CLI Example:

    .. code-block:: bash

        salt-run expressware_lease.acquire cluster=db1 holder=maintenance-window
    """
    cluster = _cluster(cluster)
    holder = _caller() or holder
    if not isinstance(holder, str) or not holder:
        raise SaltInvocationError("holder must be given (the name of who takes the lease)")
    return _leases().acquire(cluster, holder, purpose=purpose)


@_refusing
def release(cluster="default", holder=None):
    """
    Give the update lease of ``cluster`` back.

    From a minion only its own lease is released. From ``salt-run`` without
    ``holder`` the operator releases the lease whoever holds it (after checking
    the node that failed); with ``holder`` only if that holder has it.

    CLI Example:

    .. code-block:: bash

        salt-run expressware_lease.release cluster=db1
    """
    cluster = _cluster(cluster)
    caller = _caller()
    return _leases().release(cluster, holder=caller or holder)


@_refusing
def show(cluster=None):
    """
    Show who holds the update lease of ``cluster`` (all clusters when omitted),
    since when and for how long (``age`` in seconds).

    CLI Example:

    .. code-block:: bash

        salt-run expressware_lease.show
        salt-run expressware_lease.show cluster=db1
    """
    leases = _leases()
    if cluster is None:
        return leases.all()
    return leases.get(_cluster(cluster))


@_refusing
def wait_gate(gate, wait=2):
    """
    The decision the ``rolling`` runner took for a prepared job's ``gate``:
    ``{"gate": ..., "decision": "go" | "cancel" | "wait", "reason": ...}``. Waits
    up to ``wait`` seconds (at most 30) for a decision before answering ``wait``;
    ``decision: unknown`` for a gate the runner did not open. A gate whose runner
    (``salt-run`` process) is gone is cancelled: no one would ever release it.

    The prepared ``expressware.installed`` job calls this through
    ``publish.runner`` until it is decided; a minion gets only its own gates. The
    first answer to the job is noted in the gate (``taken``); ``age`` is how long
    ago the runner decided.

    The question waits only where the master routes ``minion_runner`` to a worker
    pool of its own (``worker_pools``, see the README); elsewhere it is answered at
    once with ``long_poll: False`` (a waiting worker would hold the job returns and
    file requests queued behind it), and the job waits on its event bus instead.

    CLI Example:

    .. code-block:: bash

        salt-run expressware_lease.wait_gate gate=20261127T064052-54cf78:a5868e44 wait=0
    """
    if not isinstance(gate, str) or not _GATE_TOKEN.match(gate):
        raise SaltInvocationError(f"gate must be a token of letters, digits, '.', '_', ':' or '-', not {gate!r}")
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= 30:
        raise SaltInvocationError(f"wait must be a number of seconds between 0 and 30, not {wait!r}")
    gates, caller = _gates(), _caller()
    long_poll = store.long_poll_allowed(__opts__)
    deadline = time.monotonic() + (wait if long_poll else 0)
    # Listening before the first look: a decision taken after it wakes this at once.
    with salt.utils.event.get_event("master", sock_dir=__opts__["sock_dir"], opts=__opts__, listen=True) as bus:
        while True:
            record = gates.get(gate)
            if record is None or (caller and record["minion"] != caller):
                return {"gate": gate, "decision": "unknown", "reason": "no such gate" + (f" for {caller}" if caller else "")}
            if record["decision"] == "wait" and not store.driver_alive(record["driver"]):
                record = gates.decide(gate, "cancel", "the rolling runner that prepared this node is gone")
            if record["decision"] != "wait":
                if caller:  # the job itself: it acts on this answer
                    record = gates.claim(gate)
                    bus.fire_event({"gate": gate, "minion": caller, "decision": record["decision"]}, GATE_TAKEN)
                return {"gate": gate, "decision": record["decision"], "reason": record["reason"],
                        "age": round(time.time() - record["decided"], 3), "long_poll": long_poll}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {"gate": gate, "decision": "wait", "reason": None, "long_poll": long_poll}
            bus.get_event(wait=remaining, tag=GATE_DECIDED, full=True)
