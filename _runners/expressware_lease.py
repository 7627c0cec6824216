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

A minion acts only for itself: the holder of what it acquires or releases is its
authenticated id, whatever ``holder`` it passes (it cannot release another holder's
lease, nor take one under another name); ``show`` answers it about one named
cluster's lease, not the list of every cluster; ``gate_wanted`` answers it about
its own prepared job only. ``gate_wanted`` answers a node's job that the
``rolling`` runner prepared ahead of its turn (it waits at a gate): is it still
going to be released? (the same ``peer_run`` entry, ``expressware_lease.*``,
covers it). The ``rolling`` runner holds the same lease for the whole of a
rollout, so a highstate cannot take a second node down meanwhile.

Leases are files under ``<master cachedir>/expressware/leases/``, or under the directory
two masters share (the master configuration's ``expressware:store``: README, "Two
masters"), changed under an exclusive file lock and replaced atomically: a request means
the same on either master.
"""

import importlib.util
import logging
import os
import sys
import time

from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "expressware_lease"
#: Seconds the members of a cluster have to answer the health look before a lease (each member is asked once).
HEALTH_TIMEOUT = 5
#: Seconds a node's update is expected to take under highstate when the state does not say (its default timeout).
DEFAULT_EXPECTED = 1800


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
    plan_lib = _shared("expressware_rollout")
    requests_lib = _shared("expressware_requests")
    protocol = _shared("expressware_protocol")
    checks = _shared("expressware_args")
    health = _shared("expressware_health")
    saltio = _shared("expressware_salt")
    window_lib = _shared("expressware_window")
except ImportError as _exc:  # reported by __virtual__
    store = plan_lib = requests_lib = protocol = checks = health = saltio = window_lib = None
    _IMPORT_ERROR = str(_exc)


_refusing = checks.refusing if checks else (lambda func: func)


def __virtual__():
    if store is None or checks is None:
        return False, f"expressware_lease: {_IMPORT_ERROR}"
    return __virtualname__


def _leases():
    return store.lease_store(__opts__)


def _caller():
    """The authenticated minion id for ``publish.runner`` calls, else None (salt-run)."""
    return requests_lib.caller(__opts__)


def _for_itself(name):
    """``name`` as given from ``salt-run``; from a minion always its own id, whatever name it gave."""
    return _caller() or name


def _cluster(cluster):
    try:
        return store.check_name(cluster, "cluster")
    except ValueError as exc:
        raise SaltInvocationError(str(exc)) from exc


@_refusing
def acquire(cluster="default", holder=None, purpose=None, expected=None):
    """
    Take the update lease of ``cluster`` for ``holder``.

    Returns ``{"granted": True, ...}`` when the lease was free or already held by
    ``holder``, else ``{"granted": False, "holder": ..., "age": seconds, ...}``.
    Called from a minion (``publish.runner``) the holder is always that minion, and a
    free lease is refused (``"reason"``) while another member of the cluster is down or
    outside the cluster's maintenance window (the master configuration's
    ``expressware:window:<cluster>``, as ``rolling.update`` honours it), or when the
    node's update, expected to take ``expected`` seconds (the state's ``timeout``;
    default 1800), would not be done before the window closes.

    CLI Example:

    .. code-block:: bash

        salt-run expressware_lease.acquire cluster=db1 holder=maintenance-window
    """
    cluster = _cluster(cluster)
    holder = _for_itself(holder)
    if purpose is not None and not isinstance(purpose, str):
        raise SaltInvocationError(f"purpose must be a text, not {purpose!r}")
    if not isinstance(holder, str) or not holder:
        raise SaltInvocationError("holder must be given (the name of who takes the lease)")
    expected = DEFAULT_EXPECTED if expected is None else checks.seconds(expected, "expected")
    leases = _leases()
    if not leases.get(cluster).get("held"):
        # A new disruption (the lease is free): refused outside the cluster's maintenance window (a minion's: the
        # operator taking the lease from salt-run is not held by it), and while any member of the cluster is down,
        # whoever took it down. (A lease held by another is refused by the store; its holder keeps it while its
        # node is down.)
        refusal = (_window_refusal(cluster, expected, _caller()) if _caller() else None) or _health_refusal(cluster)
        if refusal is not None:
            return dict(refusal, cluster=cluster, held=False, holder=None)
    return leases.acquire(cluster, holder, purpose=purpose[:200] if purpose else purpose)


def _members(cluster):
    """The minions whose cached grain or pillar ``expressware:cluster`` is ``cluster`` (the master's cache: a
    member that is down is found all the same)."""
    import salt.utils.minions  # pylint: disable=import-outside-toplevel

    found = salt.utils.minions.CkMinions(__opts__).check_minions(
        f"G@expressware:cluster:{cluster} or I@expressware:cluster:{cluster}", "compound"
    )
    return sorted(found.get("minions", []) if isinstance(found, dict) else found)


def _window_refusal(cluster, expected, minion):
    """None when ``cluster`` has no maintenance window in the master configuration or ``minion``'s update,
    expected to take ``expected`` seconds, fits in it now; else the refusal, with the window and when it may start."""
    config = __opts__.get("expressware") or {}
    windows = config.get("window") if isinstance(config, dict) else None
    spec = windows.get(cluster) if isinstance(windows, dict) else None
    if spec is None:
        return None
    try:
        win = window_lib.parse(spec, config.get("window_tz"))
    except window_lib.WindowError as exc:
        # The operator's configuration is wrong: nothing may start until it is fixed (said, not guessed around).
        return {"granted": False, "reason": f"the master configuration's expressware:window:{cluster}: {exc}"}
    now = (window_lib.clock_from_env() or time.time)()
    reason = win.wait_reason(now, expected, what=f"the update of {minion}", then="the state may run from")
    if reason is None:
        return None
    log.info("lease of %s refused to %s: %s", cluster, minion, reason)
    return {"granted": False, "reason": reason, "window": win.describe()}


def _health_refusal(cluster):
    """None when every member of ``cluster`` is active by one bounded direct look (``expressware.node_state``,
    all at once), else the refusal with the evidence: ``{"granted": False, "reason": ..., "health": verdict}``."""
    members = _members(cluster)
    if not members:
        return None  # members unknown to the master: the lease alone (one node at a time) applies
    view = health.ClusterView(members, health_wait=0)
    asked = time.time()
    with saltio.SaltAdapter(__opts__, default_timeout=HEALTH_TIMEOUT) as salt_io:
        answers = salt_io.call(members, "expressware.node_state", timeout=HEALTH_TIMEOUT)
    for minion in members:
        view.answer(minion, answers.get(minion), asked)
    verdict = view.verdict(time.time())
    if verdict["verdict"] == health.GO:
        return None
    log.info("lease of %s refused: cluster health: %s", cluster, verdict["why"])
    return {"granted": False, "reason": f"cluster health: {verdict['why']}", "health": verdict}


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
    return _leases().release(cluster, holder=_for_itself(holder))


@_refusing
def show(cluster=None):
    """
    Show who holds the update lease of ``cluster`` (all clusters when omitted,
    from ``salt-run`` only), since when and for how long (``age`` in seconds).

    CLI Example:

    .. code-block:: bash

        salt-run expressware_lease.show
        salt-run expressware_lease.show cluster=db1
    """
    leases = _leases()
    if cluster is None:
        if _caller():
            # A minion asks about its own cluster's lease; the list of every cluster is the operator's.
            raise SaltInvocationError("a minion must name the cluster whose lease it asks about (cluster=...)")
        return leases.all()
    return leases.get(_cluster(cluster))


@_refusing
def gate_wanted(gate, minion=None):
    """
    Does the ``rolling`` runner still mean to release the prepared job of ``minion``
    waiting at ``gate``? A job that the runner published ahead of its node's turn
    asks this now and then while it waits (``expressware:gate_check_interval``):
    when the answer is no (its ``salt-run`` was killed, the rollout stopped, another
    job took its place) nothing will release it, and it ends, having changed
    nothing, instead of holding the node's state queue until its ``gate_timeout``.

    Returns ``{"gate": ..., "minion": ..., "wanted": True|False|None, "reason": ...}``;
    None (no clear answer: the job waits on) on a syndic's master (``syndic_master``
    set) that does not know the rollout: it runs on the master of masters. A syndic
    master that names the master of masters' ``expressware:store`` knows it and
    answers as the master of masters would.
    Called from a minion (``publish.runner``), ``minion`` is always that minion.

    CLI Example:

    .. code-block:: bash

        salt-run expressware_lease.gate_wanted gate=20261127T093042-4665d1:9a87b8fd minion=node2
    """
    minion = _for_itself(minion)
    if not isinstance(minion, str) or not minion:
        raise SaltInvocationError("minion must be given (the minion whose prepared job waits)")
    rollout_id = protocol.gate_rollout(gate)
    try:
        store.check_name(rollout_id, "rollout id")
    except ValueError:
        rollout_id = None
    if rollout_id is None:
        raise SaltInvocationError(f"gate must be a rolling runner's gate (<rollout id>:<token>), not {gate!r}")
    try:
        record = store.rollout_store(__opts__).load(rollout_id)
    except ValueError as exc:
        if __opts__.get("syndic_master"):
            # A syndic's master: the rollout runs on the master of masters above it, whose records this master
            # does not see (a minion's publish.runner stops here). No clear answer: the job waits on.
            return {"gate": gate, "minion": minion, "wanted": None, "reason": f"{exc} on this syndic's master"}
        return {"gate": gate, "minion": minion, "wanted": False, "reason": str(exc)}  # no such rollout
    wanted, reason = plan_lib.gate_wanted(record, minion, gate, store.driver_alive(record))
    return {"gate": gate, "minion": minion, "wanted": wanted, "reason": reason}
