"""
Report the Dolphin eXpressWare version and node state of a Cluster Node.

- installed version: from the RPM database (``Dolphin-*`` packages);
- running version: what the loaded drivers report in ``dis_services status``
  (differs from the installed one after an installation under load);
- node state: *active* (green in dis_admin) when every service runs and
  ``dis_diag`` passes, else *inactive*; only an active node counts as back after
  an update.

Configuration (minion config, grains or pillar, read with ``config.get``):

.. code-block:: yaml

    expressware:
      prefix: /opt/DIS                 # <prefix>/sbin/dis_services, <prefix>/sbin/dis_diag
      rpm: rpm                         # the rpm executable that knows the Dolphin-* packages
      workdir: /var/cache/expressware  # where the SIA runs and RPMs are built or staged

Events: :py:func:`wait_active` fires ``expressware/node/active`` (or
``expressware/node/inactive`` on timeout) on the master event bus.
"""

import contextlib
import importlib.util
import os
import sys
import time

import salt.utils.path
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "expressware"

#: Seconds between the looks of :py:func:`wait_active` by default (``expressware:poll_interval``), and the least
#: allowed.
POLL_INTERVAL = 0.05


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
    vendor = _shared("expressware_vendor")
    execution = _shared("expressware_exec")
    protocol = _shared("expressware_protocol")
    checks = _shared("expressware_args")
    node_lib = _shared("expressware_node")
    notify_lib = _shared("expressware_notify")
except ImportError as _exc:  # reported by __virtual__
    vendor = execution = protocol = checks = node_lib = notify_lib = None
    _IMPORT_ERROR = str(_exc)


def __virtual__():
    if vendor is None:
        return False, f"expressware: {_IMPORT_ERROR}"
    return __virtualname__


def info():
    """
    Report which copy of this extension the minion runs and where its shared code came from: ``package`` (pip-installed
    saltext), ``extmods`` (synced with ``saltutil.sync_all``) or ``module_dirs`` (a source tree).

    A stale synced copy shadows a pip-installed one (Salt searches synced modules first); this tells which one answers.

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.info
    """
    here = os.path.abspath(__file__)
    extmods = os.path.abspath(__opts__.get("extension_modules", "/nonexistent"))
    if here.startswith(extmods + os.sep):
        mode = "extmods"
    elif os.sep + os.path.join("saltext", "expressware", "modules") + os.sep in here:
        mode = "package"
    else:
        mode = "module_dirs"
    return {"loaded_from": mode, "module": here, "shared": [vendor.__file__, execution.__file__]}


def _rpm():
    rpm = execution.config(__salt__, "rpm")
    path = rpm if os.path.isabs(rpm) else salt.utils.path.which(rpm)
    if not path or not os.path.isfile(path):
        raise CommandExecutionError(f"the rpm executable {rpm!r} (expressware:rpm) was not found")
    if not os.access(path, os.X_OK):
        raise CommandExecutionError(f"{path} (expressware:rpm) is not executable")
    return path


def packages():
    """
    List the installed ``Dolphin-*`` packages with their eXpressWare version.

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.packages
    """
    argv = [_rpm(), "-qa", "--queryformat", vendor.RPM_QUERYFORMAT, vendor.RPM_PATTERN]
    result = execution.run(__salt__, argv)
    if result["retcode"] != 0:
        raise CommandExecutionError(f"rpm -qa failed with exit status {result['retcode']}: {result['stderr'].strip()}")
    try:
        return vendor.parse_rpm_packages(result["stdout"])
    except ValueError as exc:
        raise CommandExecutionError(f"cannot understand the output of rpm: {exc}") from exc


def version():
    """
    Return the installed eXpressWare version (from the RPM database), or ``None``
    when no ``Dolphin-*`` package is installed.

    Raises ``CommandExecutionError`` when the packages disagree about the version.

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.version
    """
    try:
        return vendor.installed_version(packages())
    except ValueError as exc:
        raise CommandExecutionError(str(exc)) from exc


def frontend_version():
    """
    Return the version of the Cluster Management Node (frontend) packages (``Dolphin-NetworkManager``,
    ``Dolphin-NetworkHosts``), or ``None`` when this node is not a frontend. :py:func:`version` does not count them:
    ``--install-node`` leaves them alone, ``--install-frontend`` updates them.

    CLI Example:

    .. code-block:: bash

        salt frontend expressware.frontend_version
    """
    try:
        return vendor.frontend_version(packages())
    except ValueError as exc:
        raise CommandExecutionError(str(exc)) from exc


def frontend_preflight(version, sia=None, enforce=False):
    """
    What the ``rolling`` runner checks on the Cluster Management Node (frontend) before any node is touched: its
    frontend packages' version, what ``--install-frontend`` would do (``none`` when they are on ``version``, ``refuse``
    for a node that is no frontend or a downgrade without ``enforce``), and whether the installer is reachable (``sia``
    is fetched, nothing runs). Changes nothing. Problems come back as ``error`` or ``sia_error``.

    CLI Example:

    .. code-block:: bash

        salt frontend expressware.frontend_preflight 5.26.0 sia=salt://expressware/Dolphin_eXpressWare-5.26.0.sh
    """
    version = validate_version(version)
    checks.flag(enforce, "enforce")
    result = {}
    try:
        result["installed"] = frontend_version()
    except CommandExecutionError as exc:
        result["error"] = str(exc)
        return result
    result["decision"] = vendor.frontend_decision(result["installed"], version, enforce=enforce)
    if sia and result["decision"]["action"] == "install":
        result.update(_fetch_sia(sia, version))
    return result


def running_version():
    """
    Return the version the loaded drivers run (``dis_services status``), or ``None`` when no service runs.

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.running_version
    """
    return __salt__["dis_services.status"]()["running_version"]


def staged_rpms(workdir=None):
    """
    List the node RPMs built or staged in the work directory (``<workdir>/node_RPMS``)
    and the eXpressWare versions they carry.

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.staged_rpms
    """
    if workdir is None:
        workdir = execution.config(__salt__, "workdir")
    if not isinstance(workdir, str) or not os.path.isabs(workdir):
        raise SaltInvocationError(f"workdir must be an absolute path, not {workdir!r}")
    directory = os.path.join(workdir, "node_RPMS")
    names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    rpms = {name: vendor.parse_rpm_filename(name) for name in names if name.endswith(".rpm")}
    return {
        "directory": directory,
        "rpms": sorted(rpms),
        "versions": sorted({info["version"] for info in rpms.values() if info}, key=vendor.version_key),
    }


def diag():
    """
    Run ``dis_diag -V 0`` and return ``{"passed": bool, "lines": [...]}``.

    A failing test is an answer (``passed: False``), not an error: it is what a
    node reports while its services are stopped or its links are training.

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.diag
    """
    result = execution.run(__salt__, [execution.tool_path(__salt__, "dis_diag"), "-V", "0"])
    if result["retcode"] not in (0, 1):
        raise CommandExecutionError(f"dis_diag failed with exit status {result['retcode']}: {result['stderr'].strip()}")
    try:
        parsed = vendor.parse_diag(result["stdout"])
    except ValueError as exc:
        raise CommandExecutionError(f"cannot understand the output of dis_diag: {exc}") from exc
    if parsed["passed"] != (result["retcode"] == 0):
        raise CommandExecutionError(f"dis_diag exited {result['retcode']} but printed {parsed['lines'][-1]!r}")
    return parsed


def node_state():
    """
    Return the node's state with its evidence.

    ``state`` is ``active`` when every service runs and ``dis_diag`` passes, else ``inactive``. The evidence:
    ``services`` (from ``dis_services status``), ``diag`` (``dis_diag -V 0``: passed and its last lines), ``installed``
    and ``running`` versions, and ``reasons`` when inactive.

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.node_state
    """
    # Its tools at once: a pre-flight or a health look at a member waits for the slowest, not for their sum.
    return _node_state(together=True)


def _node_state(installed=None, quick=False, together=False):
    """:py:func:`node_state`; ``installed`` when already known. ``quick``: stop at the
    first sign that the node is not active (no ``dis_diag`` while services are down),
    for the polls of :py:func:`wait_active`; such a partial answer has ``diag: None``.
    ``together``: run ``dis_diag`` while ``dis_services status`` runs (for the polls
    while links train, when both are needed and a shorter look sees the node active
    sooner)."""
    known = version if installed is None else (lambda: installed)
    return node_lib.look(__salt__["dis_services.status"], diag, known, quick=quick, together=together)


def is_active():
    """
    Return ``True`` when the node is active (all services run, ``dis_diag`` passes).

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.is_active
    """
    return node_state()["active"]


def cluster_state():
    """
    Return the last cluster-state report of the Network Manager on this Cluster Management Node (frontend), as its
    notification script keeps it in ``<state_dir>/state.json``: ``{"state", "node", "seq", "time"}``.
    ``state_dir``: ``expressware:notify:state_dir`` (config, grains or pillar), as for the ``expressware.notify``
    state. An error when no report is on record (the script is not installed or has not run yet).

    CLI Example:

    .. code-block:: bash

        salt frontend1 expressware.cluster_state
    """
    default = notify_lib.STATE_DIR
    return notify_lib.read_report(__salt__["config.get"]("expressware:notify:state_dir", default) or default)


def _fire(tag, data):
    """Announce on the master event bus (``event.send``)."""
    try:
        __salt__["event.send"](tag, data)
    except Exception:  # pylint: disable=broad-except
        # The event is a courtesy to listeners; the caller still gets the result.
        pass


def wait_active(timeout=300, interval=None, fire_event=True):
    """
    Wait until the node is active, at most ``timeout`` seconds; return the last :py:func:`node_state`.

    The vendor tools have no notification, so the node is looked at every ``interval`` seconds (default: config
    ``expressware:poll_interval``, else 0.05, the least allowed: a look starts as soon as the last one ended whenever
    the tools take longer, since every moment between the node's becoming active and its being seen so is a moment
    the next node waits; while services are down a look is one ``dis_services status``, while links train it adds
    ``dis_diag``, run at the same time). The installed version is read once, before the first look:
    packages do not change while a node comes up. With ``fire_event`` the outcome is announced on the master event bus
    as ``expressware/node/active`` or ``expressware/node/inactive`` (with the node state as data), which the ``rolling``
    runner listens for.

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.wait_active timeout=600
        salt '*' expressware.wait_active timeout=600 interval=1
    """
    timeout = checks.number(timeout, "timeout", 0, 86400)
    if interval is None:
        interval = __salt__["config.get"]("expressware:poll_interval", POLL_INTERVAL)
    interval = checks.number(interval, "interval", POLL_INTERVAL, 60)
    checks.flag(fire_event, "fire_event")
    deadline = time.monotonic() + timeout
    installed = version()
    state = None
    while True:
        look = time.monotonic()
        # Services up at the last look (links training): both tools at once from now on.
        state = _node_state(installed=installed, quick=True, together=state is not None and state["diag"] is not None)
        if state["active"] or time.monotonic() >= deadline:
            break
        # A look every ``interval`` seconds: the time the look took counts.
        time.sleep(max(0.0, min(look + interval, deadline) - time.monotonic()))
    if not state["active"]:
        state = _node_state()  # the whole evidence for the report
    if fire_event:
        _fire(protocol.node_event_tag(state), protocol.node_event(state))
    return state


def check_update(version, enforce=False, compat=None, downgrade_from=None):
    """
    Decide what this node needs to reach ``version``, without changing anything.

    Returns ``{"action": "none"|"activate"|"install"|"refuse", "reason": ..., "installed": ..., "running": ...}``.
    ``refuse`` covers a downgrade or reinstall without ``enforce=True`` and a version pair the release notes forbid.
    ``compat`` is the rolling-compatibility data from the release notes (default: pillar/config
    ``expressware:compat``)::

        {"rolling": [{"from": "5.25.*", "to": "5.26.0"}], "incompatible": ["6.0.0"]}

    ``downgrade_from`` (``rolling.rollback``): the downgrade to ``version`` is allowed
    without ``enforce``, but only when the installed version is exactly this one (the
    decision then says ``"downgrade": True``; any other installed version is refused).

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.check_update 5.26.0
        salt '*' expressware.check_update 5.24.0 enforce=True
        salt '*' expressware.check_update 5.25.2 downgrade_from=5.26.0
    """
    validate_version(version)
    checks.flag(enforce, "enforce")  # before any tool runs: bad input executes nothing
    if downgrade_from is not None:
        validate_version(downgrade_from)
    return _decide(version, enforce, compat, __salt__["expressware.version"](), running_version(), downgrade_from)


def _decide(version, enforce, compat, installed, running, downgrade_from=None):
    version = validate_version(version)
    checks.flag(enforce, "enforce")  # was bool(enforce): enforce="False" allowed a downgrade
    if downgrade_from is not None:
        downgrade_from = validate_version(downgrade_from)
    if compat is None:
        compat = __salt__["config.get"]("expressware:compat", None)
    try:
        vendor.validate_compat(compat)
    except ValueError as exc:
        raise SaltInvocationError(f"invalid rolling-compatibility data: {exc}") from exc
    return node_lib.update_decision(version, enforce, compat, installed, running, downgrade_from)


def preflight(version, sia=None, enforce=False, compat=None, downgrade_from=None):
    """
    Everything the ``rolling`` runner checks on a node before any node is touched, in one call: node state, installed
    version, what the update would do (:py:func:`check_update`), whether the installer is reachable (``sia`` is fetched,
    nothing runs), the grains that decide which nodes can share built RPMs, and the work directory. Changes nothing.

    Problems come back as ``error`` (the node cannot be judged) or ``sia_error``.
    ``downgrade_from``: as for :py:func:`check_update` (a rollback).

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.preflight 5.26.0 sia=salt://expressware/Dolphin_eXpressWare-5.26.0.sh
    """
    result = {
        "grains": {key: __grains__.get(key) for key in ("cpuarch", "os", "osrelease", "kernelrelease")},
    }
    # The installer is fetched from the master while the vendor tools look at the node
    # (it changes nothing; it is reported only when the node needs it).
    with node_lib.meanwhile(_fetch_sia, sia, version) if sia else contextlib.nullcontext() as fetching:
        try:
            result["workdir"] = execution.config(__salt__, "workdir")
            # One look at the node serves both (the vendor tools are what a pre-flight
            # of a large cluster spends its time on).
            result["node_state"] = node_state()
            result["decision"] = _decide(
                version,
                enforce,
                compat,
                result["node_state"]["installed"],
                result["node_state"]["running"],
                downgrade_from,
            )
        except (CommandExecutionError, SaltInvocationError) as exc:
            result["error"] = str(exc)
            return result
        result["installed"] = result["decision"]["installed"]
        if fetching and result["decision"]["action"] in ("install", "activate"):
            result.update(fetching.result())
    return result


def _fetch_sia(sia, version):
    """The pre-flights' installer check: ``{"sia": fetched}`` or ``{"sia_error": why}`` (and nothing runs)."""
    try:
        fetched = __salt__["sia.fetch"](sia)
    except (CommandExecutionError, SaltInvocationError) as exc:
        return {"sia_error": str(exc)}
    if fetched["version"] and fetched["version"] != version:
        return {"sia": fetched, "sia_error": f"{sia} is version {fetched['version']}, not {version}"}
    return {"sia": fetched}


def validate_version(version):
    """
    Return ``version`` if it is an eXpressWare version (``MAJOR.MINOR.PATCH`` with
    an optional suffix such as ``-d``), else raise ``SaltInvocationError``.

    CLI Example:

    .. code-block:: bash

        salt '*' expressware.validate_version 5.26.0-d
    """
    # YAML on the CLI turns 5.26 into a float; a version is always text.
    if not isinstance(version, str):
        raise SaltInvocationError(
            f"version {version!r} is not an eXpressWare version ({vendor.VERSION_FORMAT}); "
            "quote it if YAML made it a number"
        )
    try:
        return vendor.check_version(version)
    except ValueError as exc:
        raise SaltInvocationError(str(exc)) from exc
