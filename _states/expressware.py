"""
Ensure a Dolphin eXpressWare version on a Cluster Node, by the vendor's rolling-update procedure.

.. code-block:: yaml

    expressware:
      expressware.installed:
        - name: 5.26.0
        - sia: salt://expressware/Dolphin_eXpressWare-5.26.0.sh
        - applications: [ndbmtd, mysqld]   # stopped before, started after
        - timeout: 600                     # seconds to become active again

Per node, when the node is not already on the target and active:

1. take the cluster's update lease from the master (``expressware_lease`` runner
   through ``publish.runner``), so that a highstate on every node at once still
   disrupts only one node at a time; wait ``lease_wait`` seconds for it, then defer;
2. stop the applications, then ``dis_services stop``;
3. run the installer with ``--install-node`` (``--use-rpms`` when RPMs for the
   target are given or staged in the work directory, else it builds them);
   ``--reboot`` when asked or when the services could not be stopped;
4. wait until the node is active (all services run, ``dis_diag`` passes);
5. start the applications, give the lease back.

A node that does not become active keeps the lease (the cluster stays at one node
down) and its applications are not started on a broken stack; the operator checks
the node and releases the lease with ``salt-run expressware_lease.release``.
Masterless runs (``salt-call --local``) have no master to lease from and say so.

Requires the ``expressware``, ``dis_services`` and ``sia`` execution modules.
"""

import importlib.util
import logging
import os
import sys
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

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
    checks = _shared("expressware_args")
    gate_wait = _shared("expressware_gate_wait")
except ImportError as _exc:  # reported by __virtual__
    protocol = checks = gate_wait = None
    _IMPORT_ERROR = str(_exc)


def __virtual__():
    if protocol is None:
        return False, f"expressware: {_IMPORT_ERROR}"
    for needed in ("expressware.check_update", "sia.install_node", "dis_services.stop"):
        if needed not in __salt__:
            return False, f"the expressware state needs the execution module function {needed}"
    return __virtualname__


# ---------------------------------------------------------------------------
# The lease
# ---------------------------------------------------------------------------


def _masterless():
    return __opts__.get("file_client") == "local" or __opts__.get("master_type") == "disable"


#: Tries of a lease call whose request to the master timed out (a busy master: its workers all taken). Each lease
#: call means the same when repeated (acquire by its holder, release, show), so asking again is safe.
LEASE_CALL_TRIES = 3


def _lease_call(fun, cluster, *extra):
    for attempt in range(1, LEASE_CALL_TRIES + 1):
        ret = __salt__["publish.runner"](f"expressware_lease.{fun}", arg=[f"cluster={cluster}", *extra], timeout=30)
        # publish.runner's own words when its request got no answer in time (it returns them, it does not raise).
        if not (isinstance(ret, str) and ret.endswith("runner publish timed out")) or attempt == LEASE_CALL_TRIES:
            break
        log.warning("expressware_lease.%s: %s (try %d of %d); asking again", fun, ret, attempt, LEASE_CALL_TRIES)
        time.sleep(1)
    if not isinstance(ret, dict) or not ret:
        raise CommandExecutionError(
            f"the master did not answer expressware_lease.{fun} ({ret!r}); does its peer_run allow "
            "expressware_lease.* for minions? (see the README)"
        )
    if ret.get("status") == "refused":
        raise CommandExecutionError(f"expressware_lease.{fun} refused: {ret.get('comment')}")
    return ret


def _acquire_lease(cluster, wait, poll, expected):
    """Wait (bounded) for the lease; return (granted, lease info). ``expected``: seconds this node's update may take
    (the master's maintenance window must fit it)."""
    deadline = time.monotonic() + wait
    while True:
        lease = _lease_call("acquire", cluster, f"expected={expected}")
        # Outside the maintenance window: it opens in hours, not within a lease wait (the refusal says when).
        if lease.get("granted") or lease.get("window") or time.monotonic() >= deadline:
            return bool(lease.get("granted")), lease
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def _holds_lease(cluster):
    lease = _lease_call("show", cluster)
    return lease.get("held") and lease.get("holder") == __opts__["id"]


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------


def _phase(phase, version, **extra):
    """Tell the master where this node is (the ``rolling`` runner records it)."""
    try:
        __salt__["event.send"](protocol.NODE_PHASE, protocol.phase_event(phase, version, **extra))
    except Exception:  # pylint: disable=broad-except
        pass  # progress reporting must never break the update itself


def _await_gate(gate, version, timeout):
    """Announce this node ready (everything checked, nothing changed) and wait on
    the minion's event bus for ``expressware/gate/go`` naming ``gate``; return None
    when released, else why not (cancelled, ``timeout`` seconds passed, or the
    rollout will not release it any more): ``expressware_gate_wait``."""
    return gate_wait.await_gate(gate, timeout, __salt__, __opts__, lambda: _phase("ready", version, gate=gate))


def _staged_rpms(use_rpms, version):
    """``use_rpms`` as given, or the work directory when it holds RPMs of ``version``."""
    if use_rpms:
        return use_rpms
    staged = __salt__["expressware.staged_rpms"]()
    return True if version in staged["versions"] else None


def _stop_applications(applications, changes):
    for app in applications:
        if not __salt__["service.stop"](app):
            raise CommandExecutionError(f"application {app} could not be stopped")
        changes.setdefault("applications_stopped", []).append(app)


def _start_applications(applications, changes):
    failed = []
    for app in applications:
        if __salt__["service.start"](app):
            changes.setdefault("applications_started", []).append(app)
        else:
            failed.append(app)
    return failed


#: Options of Salt's ``state.single`` that it hands on to the state function with the
#: state's own arguments (names starting with ``__`` are Salt's own too, e.g. the
#: ``__pub_kwarg`` of a queued job): taken and ignored. Any other name is a mistake.
_SALT_OPTIONS = frozenset(["pillar", "pillar_enc", "pillarenv", "localconfig", "concurrent", "mock", "sync_mods"])


def _check_args(name, applications, timeout, lease_wait, reboot, enforce, lease, gate=None, gate_timeout=0, extra=()):
    unknown = sorted(key for key in extra if not key.startswith("__") and key not in _SALT_OPTIONS)
    if unknown:
        raise SaltInvocationError("unknown argument(s) of expressware.installed: " + ", ".join(map(repr, unknown)))
    __salt__["expressware.validate_version"](name)
    if gate is not None and not protocol.valid_gate(gate):
        raise SaltInvocationError(f"gate must be a token of letters, digits, '.', '_', ':' or '-', not {gate!r}")
    checks.seconds(gate_timeout, "gate_timeout", 1, checks.WEEK)
    checks.names(applications, "applications", "service names", nonempty=True)
    checks.seconds(timeout, "timeout", 0, 86400)
    checks.seconds(lease_wait, "lease_wait", 0, 86400)
    for value, what in ((reboot, "reboot"), (enforce, "enforce"), (lease, "lease")):
        checks.flag(value, what)


def installed(
    name,
    sia=None,
    use_rpms=None,
    reboot=False,
    enforce=False,
    applications=None,
    timeout=600,
    compat=None,
    cluster=None,
    lease=True,
    lease_wait=1800,
    gate=None,
    gate_timeout=3600,
    downgrade_from=None,
    **kwargs,
):
    """
    Ensure eXpressWare version ``name`` is installed, running and active on this node.

    name
        The target version, e.g. ``5.26.0`` (quote it in YAML).
    sia
        ``salt://`` URL or absolute path of ``Dolphin_eXpressWare-<version>.sh``;
        needed only when the node has to change.
    use_rpms
        Directory with ``node_RPMS/`` built for this node (``True``: the work
        directory). By default RPMs of the target staged in the work directory are
        used, else the installer builds them.
    reboot
        Reboot after installing (always done when the services cannot be stopped).
    enforce
        Allow a downgrade or a reinstall.
    applications
        Services that use the stack (e.g. ``ndbmtd``, ``mysqld``): stopped before,
        started after the node is active again; never started on a broken stack.
    timeout
        Seconds the node may take to become active after the installation.
    compat
        Rolling-compatibility data from the release notes (default: pillar
        ``expressware:compat``); see ``expressware.check_update``.
    cluster
        Name of the cluster whose update lease is taken (default: config
        ``expressware:cluster``, else ``default``).
    lease
        Take the cluster's update lease (default). The ``rolling`` runner, which
        holds the lease for its whole rollout, passes ``False``.
    lease_wait
        Seconds to wait for the lease while another node holds it, then defer.
    gate, gate_timeout
        Used by the ``rolling`` runner to prepare this node while another one is
        in flight: after every check (and the installer fetch), before anything
        changes, announce ``ready`` and wait up to ``gate_timeout`` seconds for the
        event ``expressware/gate/go`` with ``gate`` in its data on the minion's
        event bus. Not released (cancelled or timed out): nothing was changed.
    downgrade_from
        Used by ``rolling.rollback``: the downgrade to ``name`` is allowed (without
        ``enforce``) only when this exact version is installed; see
        ``expressware.check_update``.
    kwargs
        What Salt's ``state.single`` hands on (``pillar=...``, and its own
        ``__pub_*`` data when the job waited in the state queue); any other
        name is refused (a misspelt ``applications`` must not go unnoticed).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    applications = [] if applications is None else applications
    if cluster is None:
        cluster = __salt__["config.get"]("expressware:cluster", "default")
    try:
        _check_args(name, applications, timeout, lease_wait, reboot, enforce, lease, gate, gate_timeout, kwargs)
        if downgrade_from is None:
            decision = __salt__["expressware.check_update"](name, enforce=enforce, compat=compat)
        else:
            decision = __salt__["expressware.check_update"](
                name, enforce=enforce, compat=compat, downgrade_from=downgrade_from
            )
    except (SaltInvocationError, CommandExecutionError) as exc:
        return dict(ret, result=False, comment=str(exc))

    use_lease = lease and not _masterless()
    if decision["action"] == "refuse":
        return dict(ret, result=False, comment=f"Refused: {decision['reason']}")

    if decision["action"] == "none":
        return _already_there(ret, name, timeout, cluster if use_lease else None)

    if not sia:
        return dict(
            ret,
            result=False,
            comment=f"eXpressWare {name} needs to be installed ({decision['reason']}) but no sia was given",
        )

    try:
        # Fetch and check the installer before anything is disrupted.
        installer = __salt__["sia.fetch"](sia)
        if installer["version"] and installer["version"] != name:
            raise SaltInvocationError(f"the installer {sia} is version {installer['version']}, not {name}")
        sia = installer["path"]
        staged = _staged_rpms(use_rpms, name)
    except (SaltInvocationError, CommandExecutionError) as exc:
        return dict(ret, result=False, comment=str(exc))
    plan = {
        "version": {"old": decision["installed"], "new": name},
        "applications_stopped": list(applications),
        "dis_services": "stop",
        "installer": "--install-node"
        + (" --use-rpms" if staged else " (builds RPMs)")
        + (" --reboot" if reboot else ""),
        "applications_started": list(applications),
    }
    if decision["action"] == "activate":
        plan["installer"] = "none: restart the services (or reinstall with --reboot if they do not start)"
    if __opts__["test"]:
        lease_note = (
            f" after taking the update lease of cluster {cluster}"
            if use_lease
            else " (masterless: no cluster update lease)"
            if lease
            else ""
        )
        return dict(
            ret,
            result=None,
            changes=plan,
            comment=f"eXpressWare would be updated {decision['installed']} -> {name}{lease_note}: {decision['reason']}",
        )

    comments = []
    if gate is not None:
        not_released = _await_gate(gate, name, gate_timeout)
        if not_released:
            return dict(ret, result=False, comment=f"Not released ({not_released}); nothing was changed on this node")
        comments.append(f"released by the rolling runner (gate {gate})")
    if use_lease:
        try:
            granted, info = _acquire_lease(
                cluster, lease_wait, poll=__salt__["config.get"]("expressware:lease_poll", 1), expected=timeout
            )
        except CommandExecutionError as exc:
            return dict(ret, result=False, comment=str(exc))
        if not granted:
            why = (
                f"the update lease of cluster {cluster} is held by {info.get('holder')} for {info.get('age')} s"
                if info.get("holder") or not info.get("reason")
                else f"the update lease of cluster {cluster} is refused: {info['reason']}"
            )
            return dict(
                ret,
                result=False,
                comment=(
                    f"Deferred: {why} (waited {lease_wait} s); nothing was changed on this node. "
                    "Run the state again later."
                ),
            )
        comments.append(f"took the update lease of cluster {cluster}")
    elif lease:
        comments.append(
            "masterless run: no cluster update lease was taken (nothing prevents two nodes updating at once)"
        )

    changes = ret["changes"]
    try:
        _phase("stopping", name)
        _stop_applications(applications, changes)
        # A rollback's allowed downgrade needs the installer's --enforce (the decision allowed it from exactly
        # the version the rolled-back rollout installed).
        _update_node(
            decision, name, sia, staged, reboot, enforce or decision.get("downgrade", False), changes, comments
        )
    except (SaltInvocationError, CommandExecutionError) as exc:
        comments.append(f"FAILED: {exc}")
        if use_lease:
            comments.append(
                f"the update lease of cluster {cluster} stays with this node; after fixing it run "
                f"'salt-run expressware_lease.release cluster={cluster}' or apply the state again"
            )
        if applications:
            comments.append("the applications were not started on the broken stack")
        return dict(ret, result=False, changes=changes, comment="; ".join(comments))

    _phase("waiting", name)
    state = __salt__["expressware.wait_active"](timeout=timeout)
    if not state["active"]:
        comments.append(
            f"FAILED: the node did not become active within {timeout} s: "
            + "; ".join(state["reasons"])
            + f" (installed {state['installed']}, running {state['running']})"
        )
        if applications:
            comments.append("the applications were not started on the broken stack")
        if use_lease:
            comments.append(
                f"the update lease of cluster {cluster} stays with this node (one node down); release it "
                f"with 'salt-run expressware_lease.release cluster={cluster}' once the node is fixed"
            )
        return dict(ret, result=False, changes=changes, comment="; ".join(comments))

    changes["version"] = {"old": decision["installed"], "new": state["running"]}
    failed_apps = _start_applications(applications, changes)
    if use_lease:
        _lease_call("release", cluster)
        comments.append(f"released the update lease of cluster {cluster}")
    if failed_apps:
        comments.append("applications that did not start: " + ", ".join(failed_apps))
        return dict(ret, result=False, changes=changes, comment="; ".join(comments))
    comments.insert(0, f"eXpressWare {name} is installed and the node is active")
    return dict(ret, changes=changes, comment="; ".join(comments))


def _update_node(decision, name, sia, staged, reboot, enforce, changes, comments):
    """Steps 2 and 3 of the procedure; raises on failure."""
    try:
        __salt__["dis_services.stop"]()
        changes["dis_services"] = "stopped"
    except CommandExecutionError as exc:
        # The vendor manual: the files can still be installed, the new drivers
        # load after a reboot.
        changes["dis_services"] = f"could not be stopped ({exc}); rebooting after the installation"
        reboot = True

    if decision["action"] == "activate" and not reboot:
        try:
            __salt__["dis_services.start"]()
            changes["dis_services"] = "restarted on the installed version"
            return
        except CommandExecutionError as exc:
            comments.append(f"the services did not start ({exc}); reinstalling with a reboot")
            reboot, enforce = True, True
    elif decision["action"] == "activate":
        enforce = True  # same version again, to get the installer's --reboot

    _phase("installing", name)
    try:
        result = __salt__["sia.install_node"](sia, use_rpms=staged, reboot=reboot, enforce=enforce)
    except CommandExecutionError as exc:
        installed_now = __salt__["expressware.version"]()
        if installed_now != name or reboot:
            raise
        # Files are in place but the drivers did not start (memory too fragmented):
        # the vendor's fix is a reboot.
        comments.append(f"the installer could not start the services ({exc}); reinstalling with a reboot")
        result = __salt__["sia.install_node"](sia, use_rpms=staged, reboot=True, enforce=True)
        reboot = True
    changes["installer"] = " ".join(result["options"])
    if reboot:
        changes["rebooted"] = True


def _already_there(ret, name, timeout, cluster):
    if __opts__["test"]:
        state = __salt__["expressware.node_state"]()
        if not state["active"]:
            return dict(
                ret,
                result=None,
                comment=f"eXpressWare {name} is installed and running but the node is not active: "
                f"would wait up to {timeout} s",
            )
    else:
        # Returns at once on an active node, and announces it (expressware/node/active)
        # like every other successful run, for the rolling runner.
        state = __salt__["expressware.wait_active"](timeout=timeout)
        if not state["active"]:
            return dict(
                ret,
                result=False,
                comment=(
                    f"eXpressWare {name} is installed and running, but the node did not become active "
                    f"within {timeout} s: " + "; ".join(state["reasons"])
                ),
            )
    comment = f"eXpressWare {name} is installed, running and the node is active"
    if cluster and not __opts__["test"] and _holds_lease(cluster):
        # An earlier run rebooted this node and ended with it; it is back, so the
        # lease it took can go.
        _lease_call("release", cluster)
        comment += f"; released the update lease of cluster {cluster} left from an earlier run"
    return dict(ret, comment=comment)
