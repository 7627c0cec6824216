"""
Rolling update of Dolphin eXpressWare across a cluster, one Cluster Node at a time.

.. code-block:: bash

    # what would happen, touching nothing
    salt-run rolling.plan tgt='G@cluster:db1' tgt_type=compound version=5.26.0 \\
        sia=salt://expressware/Dolphin_eXpressWare-5.26.0.sh
    # do it
    salt-run rolling.update tgt='G@cluster:db1' tgt_type=compound version=5.26.0 \\
        sia=salt://expressware/Dolphin_eXpressWare-5.26.0.sh applications='[ndbmtd]' canary=1
    salt-run rolling.status                 # where it is (latest rollout), lease holder and age
    salt-run rolling.resume                 # after a failure was fixed, a canary pause, a master restart
    salt-run rolling.resume skip='[node7]'  # give up on one node explicitly
    salt-run rolling.abort                  # stop after the current node; the record stays
    salt-run rolling.list                   # the rollouts on record
    salt-run rolling.report                 # an HTML page of the latest rollout; returns its path
    salt-run rolling.rollback rollout=<id>  # the nodes that rollout changed back to their versions before

How a rollout goes (pre-flight, build once and stage, one node at a time behind the cluster health gate and
the maintenance window, a failure halts, one rollout per cluster under its update lease, a record after every
step that ``rolling.resume`` continues): README.md, "The main job", and ``_utils/expressware_driver.py``.

Events (``expressware/rolling/<rollout id>/...`` and ``expressware/rolling/refused``, each tag defined once in
``_utils/expressware_protocol.py``): README.md, "Events". Progress goes to standard error while ``salt-run`` runs
(``progress=False`` silences it), so ``--out=json`` stays clean.
"""

import importlib.util
import inspect
import logging
import os
import sys

from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "rolling"
__func_alias__ = {"list_": "list"}


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
    protocol = _shared("expressware_protocol")
    checks = _shared("expressware_args")
    driver_lib = _shared("expressware_driver")
    rollout_args = _shared("expressware_rollout_args")
    runner_lib = _shared("expressware_runner")
except ImportError as _exc:  # reported by __virtual__
    store = plan_lib = protocol = checks = driver_lib = rollout_args = runner_lib = None
    _IMPORT_ERROR = str(_exc)


def __virtual__():
    if driver_lib is None:
        return False, f"rolling: {_IMPORT_ERROR}"
    return __virtualname__


_refusing = checks.refusing if checks else (lambda func: func)


# ---------------------------------------------------------------------------
# Public functions (each: check its arguments, then one call to this master's wiring, _master())
# ---------------------------------------------------------------------------


@_refusing
def plan(
    tgt,
    version,
    sia=None,
    tgt_type="glob",
    reboot=False,
    enforce=False,
    applications=None,
    node_timeout=1800,
    compat=None,
    order=None,
    sort="name",
    canary=0,
    frontend=None,
    cluster=None,
    build=True,
    timeout=60,
    window=None,
    window_tz=None,
    cluster_members=None,
    health_wait=300,
    cluster_states=("UP",),
    parallel=None,
    halt="cluster",
    waves=None,
    progress_every=30,
):
    """
    Show what :py:func:`update` would do, in what order, which builds, touching nothing.

    Runs the same pre-flight as :py:func:`update` (which also fetches the installer on every node to check it is
    reachable) and returns the plan: order, skipped nodes, builds per group, per node the action and the versions. Exit
    status non-zero when the pre-flight finds a problem. With a maintenance window, when the first node would start
    (``window``). The arguments are :py:func:`update`'s (``cluster_members``, ``health_wait``, ``cluster_states``: the
    cluster health gate's, checked at the pre-flight). A target that spans clusters gets each cluster's plan (their
    pre-flights in parallel) and the waves.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.plan tgt='*' version=5.26.0 sia=salt://expressware/Dolphin_eXpressWare-5.26.0.sh
    """
    _master_only("plan")
    given = dict(locals())
    return _master().plan(_check_args(given), given)


def update(
    tgt,
    version,
    sia=None,
    tgt_type="glob",
    reboot=False,
    enforce=False,
    applications=None,
    node_timeout=1800,
    compat=None,
    order=None,
    sort="name",
    canary=0,
    frontend=None,
    cluster=None,
    build=True,
    timeout=60,
    progress=True,
    window=None,
    window_tz=None,
    cluster_members=None,
    health_wait=300,
    cluster_states=("UP",),
    parallel=None,
    halt="cluster",
    waves=None,
    progress_every=30,
):
    """
    Update every targeted Cluster Node to ``version``, one node at a time.

    tgt, tgt_type
        The minions (Cluster Nodes) to update, e.g. ``tgt='G@cluster:db1' tgt_type=compound``.
    version
        Target eXpressWare version, e.g. ``5.26.0``.
    sia
        ``salt://`` URL (or path on every node) of ``Dolphin_eXpressWare-<version>.sh``.
    reboot
        Reboot each node after installing (always done when its services cannot stop).
    enforce
        Allow downgrades and reinstalls.
    applications
        Services using the stack on each node, stopped before and started after it.
    node_timeout
        Seconds one node may take from its first step until it is active (a timeout
        is a failure and halts the rollout). Default 1800.
    compat
        Rolling-compatibility data from the release notes (default: each minion's pillar/config ``expressware:compat``).
    order, sort
        Node order: the minions listed in ``order`` first, the rest by ``sort`` (``name`` or ``reverse``).
    canary
        Pause after the first ``canary`` nodes until :py:func:`resume`.
    frontend
        Minion id of the Cluster Management Node, updated (``--install-frontend``) after all nodes.
    cluster
        Name of the cluster (its update lease and record); default ``default``.
    build
        Build RPMs once per group and stage them (default); ``False``: every node's installer builds for itself.
    timeout
        Seconds to wait for minions to answer short calls (pre-flight, checks).
    progress
        Print progress on standard error.
    progress_every
        Seconds between two progress lines (and ``rolling.status`` notes) about a node in flight longer than it
        should take (the slowest node so far, or ``progress_every`` before any node is done): how long out of
        ``node_timeout``, and what the node says about itself. Default 30.
    window
        Maintenance window: a node starts only inside it and only if its expected time (the slowest node so far x1.5,
        ``node_timeout`` at first) fits before it closes; otherwise the rollout is ``waiting`` and goes on by itself
        when it opens. Rules joined with ``;``: ``Sat-Sun 01:00-05:00``, ``Mon,Wed 22:00-02:00``, ``daily 01:00-03:00``,
        ``*`` (always). Default: the master configuration's ``expressware:window:<cluster>``.
    window_tz
        The window's time zone (IANA name, e.g. ``Europe/Oslo``); default the master
        configuration's ``expressware:window_tz``, else the master's own zone.
    cluster_members
        Further members of the cluster that are not updated but must be active before any node is disrupted: a
        compound target (resolved from the master's cache, so a member that is down is still found) or a list of
        minion ids. Minions whose grain or pillar ``expressware:cluster`` is the ``cluster`` name are members too.
    health_wait
        Seconds the rollout holds (``expressware/rolling/<id>/held``) while another member of the cluster is down
        before it halts; 0 halts at once. Default 300.
    cluster_states
        With ``frontend``: the states of its Network Manager (``UP``, ``REDUCED``, ``DEGRADED``, ``FAILED``,
        ``UNSTABLE``) under which a node may be disrupted; after each node the rollout waits (up to
        ``health_wait``) for the frontend to report again. Default ``[UP]``. Needs the notification script on the
        frontend (``salt <frontend> state.apply expressware.notify``); ``unchecked``: its state is not read.
    parallel, halt, waves
        A target that spans clusters (its minions' pillar or grain ``expressware:cluster``; ``cluster`` names those
        without one) is a fleet: each cluster is its own rollout (record, lease, gates), one node at a time, with one
        build per (arch, OS, kernel) for the whole fleet. ``parallel``: clusters at once (default all). ``halt``: a
        failure stops its own ``cluster`` (default) or the whole ``fleet`` (each after its node in flight). ``canary``:
        the first N clusters complete before the others start. ``waves``: targets walked in order (a wave takes whole
        clusters), each a gate for the next. ``frontend``/``cluster_members`` are for one cluster.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.update tgt='G@cluster:db1' tgt_type=compound version=5.26.0 \\
            sia=salt://expressware/Dolphin_eXpressWare-5.26.0.sh applications='[ndbmtd]'
        salt-run rolling.update tgt='db*' version=5.26.0 sia=salt://expressware/Dolphin_eXpressWare-5.26.0.sh \\
            parallel=10 waves='[db1-*, "*"]'
    """
    given = dict(locals())
    result = _refusing(_start)(given)
    if result.get("status") == "refused":
        _master().fire_refusal(given, result)
    return result


def _start(given):
    """:py:func:`update` from its arguments as given (bad ones raise ``SaltInvocationError``)."""
    _master_only("update")
    return _master().start(_check_args(given), given)


@_refusing
def resume(rollout=None, cluster=None, skip=None, timeout=60, progress=True):
    """
    Continue a stopped rollout: after a failure the operator fixed (the failed node is tried again), a canary pause, an
    abort, a master restart or a lost ``salt-run``. Finished nodes are not touched again. ``skip`` names failed or
    pending nodes to give up on explicitly. A fleet (``rollout=fleet-<id>``, or the latest rollout when it is a fleet's)
    resumes every cluster that stopped and starts those that had not.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.resume
        salt-run rolling.resume rollout=20261127T101500-1a2b3c skip='[node7]'
    """
    _master_only("resume")
    checks.names(skip, "skip")
    timeout = checks.seconds(timeout, "timeout")
    return _master().resume(rollout, cluster, skip, timeout, progress=progress)


@_refusing
def abort(rollout=None, cluster=None):
    """
    Stop a rollout. A running one stops after the node it is working on; the record
    stays (``rolling.resume`` can continue it) and the cluster's update lease is
    released. A fleet (``rollout=fleet-<id>``): every cluster, each after its node in flight.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.abort
    """
    _master_only("abort")
    return _master().abort_named(rollout, cluster)


@_refusing
def status(rollout=None, cluster=None):
    """
    Show a rollout (default: the latest one): status, reason, per node phase and versions, builds, and who holds the
    cluster's update lease since when. A rollout ``waiting`` for its maintenance window says when it goes on
    (``goes_on_at``); a node in flight longer than it should take carries the driver's last look at it (``evidence``). A
    fleet (``rollout=fleet-<id>``, or the latest rollout when it is a fleet's): a line per cluster and a total.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.status
        salt-run rolling.status cluster=db1
        salt-run rolling.status rollout=fleet-20261201T101500-1a2b3c
    """
    _master_only("status")
    return _master().status(rollout, cluster)


@_refusing
def report(rollout=None, cluster=None, path=None, format=None):  # pylint: disable=redefined-builtin
    """
    Write a picture of a rollout (default: the latest one, of ``cluster`` if given) from its record: a
    self-contained HTML page a browser opens without a network (one lane per node with its time down, the builds
    and staging, the handovers, holds and failures, a table of the figures), or with ``format=svg`` the picture
    alone. Works on a rollout still running (drawn up to now). Returns its path.

    path
        Where to write it: an absolute path ending in ``.html`` or ``.svg``. Default
        ``<master cachedir>/expressware/reports/<rollout id>.<format>``.
    format
        ``html`` (default) or ``svg``; with a ``path``, its ending decides.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.report
        salt-run rolling.report rollout=20261127T101500-1a2b3c path=/srv/www/rollouts/db1.html
        salt-run rolling.report cluster=db1 format=svg
    """
    path, format = rollout_args.report_target(path, format)
    return _master().report(rollout, cluster, path, format)


@_refusing
def list_(cluster=None, limit=20):
    """
    The rollouts on record, most recent first: id, cluster, version, status, when it started (the master's time
    zone), how long it took (so far, for one still holding its cluster) and the nodes updated of those to update.

    cluster
        Only this cluster's rollouts.
    limit
        At most this many (default 20).

    CLI Example:

    .. code-block:: bash

        salt-run rolling.list
        salt-run rolling.list cluster=db1 limit=5
    """
    cluster, limit = rollout_args.list_target(cluster, limit)
    return _master().rollout_list(cluster, limit)


# --- rolling.rollback ------------------------------------------------------------------------------------------
# Thin glue; which nodes, in what order, to which version with which installer, and the link between the two
# records are _utils/expressware_rollback.py's; the rollout itself is the update's driver's.


@_refusing
def rollback(rollout=None, sia=None, node_timeout=None, test=False, timeout=60, progress=True):
    """
    Return the nodes a rollout changed to the version each had before, one at a time, most recent first: those it
    updated and the node it failed on (a halted rollout's, which may be down or half-installed). A rollout of its
    own (new id, ``rollback_of`` in its record, ``rolled_back_by`` in the original's) with the same pre-flight,
    gates, cluster health gate, maintenance window and record as :py:func:`update`; it takes the cluster's lease over
    from a halted or paused original, and needs it free otherwise. The downgrade is allowed only on those nodes and
    only from the version the original installed (``enforce`` stays false). Refused, with nothing changed, for a
    rollout that is running, never started, changed nothing or was rolled back already, and when the changed nodes
    had different versions before.

    rollout
        The id of the rollout to roll back (``rolling.list``).
    sia
        The installer of the old version. Default: the original's, with the version in its name
        (``Dolphin_eXpressWare-<version>.sh``, ``DIS_install_<version>.sh``) replaced, in the same directory; else
        ``salt://expressware/Dolphin_eXpressWare-<old version>.sh``. The pre-flight fetches it on every node.
    node_timeout
        Seconds one node may take (default: the original's).
    test
        Show the plan (the pre-flight runs, which fetches the installer on every node) and touch nothing.
    timeout, progress
        As for :py:func:`update`.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.rollback rollout=20261127T101500-1a2b3c test=True
        salt-run rolling.rollback rollout=20261127T101500-1a2b3c
    """
    _master_only("rollback")
    rollout, sia, node_timeout, timeout = rollout_args.rollback_target(rollout, sia, node_timeout, timeout, test)
    return _master().rollback(rollout, sia, node_timeout, timeout, test, progress)


# --- update requests: rolling.request and the reactor's rolling.take_request ----------------------------------
# Thin glue; the logic (who may ask, limits, the request store) is in _utils/expressware_requests.py.
# The reactor runs take_request in its runner thread pool, as it ran rolling.update before: the rollout is driven
# there (the master's reactor process, which rolling.status sees as the driver), in the background of the request.


def _requests():
    return _shared("expressware_requests")


def _update_defaults():
    return {name: param.default for name, param in inspect.signature(update).parameters.items()}


def _checked_request(given):
    """update's own validation of a request's arguments (its defaults for what is not given)."""
    full = _update_defaults()
    full.update(given)
    try:
        return _check_args(full)
    except SaltInvocationError as exc:
        raise _requests().RequestError(str(exc)) from exc


def request(tgt=None, version=None, **kwargs):
    """
    Request a rolling update (the arguments of :py:func:`update`) and return at once with the request's id; the
    reactor (``salt/reactor/rolling_update.sls``) starts it and ``rolling.status`` follows it.

    From the master (``salt-run``) anything :py:func:`update` accepts may be requested. A minion asks through
    ``publish.runner rolling.request`` (``peer_run`` must allow it ``rolling.request``), and only within the limits
    of its entry in ``expressware:reactor:allow`` of the master's configuration. The request is recorded under the
    master's cache directory and only its id goes on the event bus; an event a minion fires itself starts nothing.
    ``sia`` defaults to ``salt://expressware/Dolphin_eXpressWare-<version>.sh``.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.request tgt='G@cluster:db1' tgt_type=compound version=5.26.0 applications='[ndbmtd]'
        salt-call publish.runner rolling.request arg='[tgt=db1-*, version=5.26.0, cluster=db1]'
    """
    given = dict(kwargs, **{name: value for name, value in (("tgt", tgt), ("version", version)) if value is not None})
    return _requests().make_request(__opts__, given, list(_update_defaults()), _checked_request)


def take_request(request=None, claimed=None):  # pylint: disable=redefined-outer-name
    """
    What the reactor calls for an ``expressware/update/request`` event: take the request ``request`` (an id
    :py:func:`request` recorded) from the store, once, and run its rollout. An event without a recorded request's
    id, or with one already taken, is refused with ``expressware/rolling/refused`` naming ``claimed`` (the ``id``
    the event carried, unverified) and changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.take_request request=20261201T151500-0123456789abcdef
    """
    return _requests().take_request(__opts__, request, claimed, lambda args: update(**dict(args, progress=False)))


# ---------------------------------------------------------------------------
# Wiring
# ---------------------------------------------------------------------------


def _master_only(fun):
    """Refuse a minion calling through ``peer_run`` (``publish.runner``): a minion may act only for itself, and a
    rollout acts on every node of a cluster. Minions ask with :py:func:`request`, within their limits."""
    minion = _requests().caller(globals().get("__opts__") or {})  # (no loader in the unit tests)
    if minion:
        raise SaltInvocationError(
            f"rolling.{fun} is for the master: {minion} is a minion (minions ask with "
            "rolling.request, within their entry of expressware:reactor:allow)"
        )


def _check_args(given):
    """``rolling.update``'s arguments checked (``expressware_rollout_args``), with this master's defaults."""
    # (The argument checks also run without a loader: the unit tests.)
    return rollout_args.update_args(given, (globals().get("__opts__") or {}).get("expressware"))


def _master():
    """This master's records, Salt and bus, for the runner (``expressware_runner``)."""
    return runner_lib.Master(__opts__)
