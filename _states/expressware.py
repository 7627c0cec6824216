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

import os
import re
import time

import salt.channel.client
import salt.utils.event
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "expressware"


def __virtual__():
    for needed in ("expressware.check_update", "sia.install_node", "dis_services.stop"):
        if needed not in __salt__:
            return False, f"the expressware state needs the execution module function {needed}"
    return __virtualname__


# ---------------------------------------------------------------------------
# The lease
# ---------------------------------------------------------------------------


def _masterless():
    return __opts__.get("file_client") == "local" or __opts__.get("master_type") == "disable"


def _lease_call(fun, cluster):
    ret = __salt__["publish.runner"](f"expressware_lease.{fun}", arg=[f"cluster={cluster}"], timeout=30)
    if not isinstance(ret, dict) or not ret:
        raise CommandExecutionError(
            f"the master did not answer expressware_lease.{fun} ({ret!r}); does its peer_run allow "
            "expressware_lease.* for minions? (see the README)"
        )
    if ret.get("status") == "refused":
        raise CommandExecutionError(f"expressware_lease.{fun} refused: {ret.get('comment')}")
    return ret


def _acquire_lease(cluster, wait, poll):
    """Wait (bounded) for the lease; return (granted, lease info)."""
    deadline = time.monotonic() + wait
    while True:
        lease = _lease_call("acquire", cluster)
        if lease.get("granted") or time.monotonic() >= deadline:
            return bool(lease.get("granted")), lease
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def _holds_lease(cluster):
    lease = _lease_call("show", cluster)
    return lease.get("held") and lease.get("holder") == __opts__["id"]


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------


GATE_GO = "expressware/gate/go"
GATE_CANCEL = "expressware/gate/cancel"
_GATE_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def _phase(phase, version, **extra):
    """Tell the master where this node is (the ``rolling`` runner records it)."""
    try:
        __salt__["event.send"]("expressware/node/phase", dict(extra, phase=phase, version=version))
    except Exception:  # pylint: disable=broad-except
        pass  # progress reporting must never break the update itself


GATE_STARTED = "expressware/gate/started"
GATE_POLL = 5  # seconds one question to the master waits there (in a worker of its pool) for the decision
GATE_ANSWER_MARGIN = 5  # seconds more for its answer to arrive
# A go from the master is acted on only when fresh and acknowledged in time: the runner
# waits GATE_STARTED_WAIT (10 s, in _runners/rolling.py) for the start, then moves on.
GATE_FRESH = 2  # seconds since the runner decided
GATE_CONFIRM_TIMEOUT = 2  # seconds for the master to acknowledge the start


class _MasterLink:
    """This job's own connection to the master for its gate: what ``publish.runner`` and
    ``event.fire_master`` send, kept open between requests (a go is answered, and the
    start announced, on a connection already there), and each answer waited for at
    most ``timeout`` seconds, one try: their own wait (request_channel_timeout x tries,
    3 minutes by default) would hold a job whose question was lost with a restarting
    master. After a failed request the next one opens a new connection."""

    def __init__(self):
        self.channel = None

    def request(self, load, timeout):
        if self.channel is None:
            self.channel = salt.channel.client.ReqChannel.factory(__opts__)
        try:
            return self.channel.send(load, tries=1, timeout=timeout)
        except Exception:
            self.close()
            raise

    def close(self):
        channel, self.channel = self.channel, None
        if channel is not None:
            try:
                channel.close()
            except Exception:  # pylint: disable=broad-except
                pass


def _ask_gate(link, gate, wait):
    """The master's decision for ``gate`` (``expressware_lease.wait_gate``): ``(decision,
    reason, age)`` with decision ``go``, ``cancel`` or ``wait`` (``age``: seconds since
    the runner decided); ``unknown`` when the master cannot tell (no such gate, or
    peer_run does not let this minion ask); ``error`` when it did not answer."""
    if _masterless():
        return "unknown", "masterless", None
    load = {"cmd": "minion_runner", "fun": "expressware_lease.wait_gate", "arg": [f"gate={gate}", f"wait={wait}"],
            "tmo": wait, "id": __opts__["id"], "no_parse": __opts__.get("no_parse", [])}
    try:
        answer = link.request(load, wait + GATE_ANSWER_MARGIN)
    except Exception as exc:  # pylint: disable=broad-except
        return "error", str(exc) or type(exc).__name__, None
    if isinstance(answer, dict) and answer.get("decision") == "wait" and answer.get("long_poll") is False:
        # The master does not let questions wait (no worker pool of their own): the bus.
        return "unknown", "the master answers at once only (no worker pool for peer calls)", None
    if isinstance(answer, dict) and answer.get("decision") in ("go", "cancel", "wait", "unknown"):
        return answer["decision"], answer.get("reason"), answer.get("age")
    if isinstance(answer, dict):  # {}: not allowed by peer_run; refused: bad input
        return "unknown", answer.get("comment") or "peer_run does not allow expressware_lease.wait_gate", None
    return "error", str(answer), None


def _confirm_start(link, gate):
    """Tell the rolling runner, through the master and acknowledged by it, that this job acts
    on its go (``expressware/gate/started``); False when the master did not acknowledge it in
    time: then it does not act on it (the runner, hearing nothing, may have moved on)."""
    load = {"cmd": "_minion_event", "id": __opts__["id"], "tag": GATE_STARTED, "data": {"gate": gate}}
    try:
        link.request(load, GATE_CONFIRM_TIMEOUT)
    except Exception:  # pylint: disable=broad-except
        return False
    return True


def _await_gate(gate, version, timeout):
    """Announce this node ready (everything checked, nothing changed) and wait for the
    ``rolling`` runner's decision on ``gate``; return ``(None, how)`` when released,
    else ``(why not, how)`` (cancelled, or ``timeout`` seconds passed).

    The runner prepares the next node this way while the current one is still in
    flight, and releases it the moment the current one is back: the next node's
    checks, installer fetch and state start-up are off the critical path.

    The decision comes by two ways, whichever is first: the master, asked in a
    loop (``expressware_lease.wait_gate``, each question waits there up to
    ``GATE_POLL`` seconds, so a go arrives within milliseconds), and the minion's
    event bus (``expressware/gate/go`` or ``cancel`` sent by the runner with
    ``event.fire``, one publish later; the only way when the master cannot be
    asked). A go from the master is acted on only if it is fresh and the master
    acknowledges this job's ``expressware/gate/started`` in time: the runner takes
    that event as the node's start, and without it (a job whose minion stopped
    does not send it) knows that nothing started. The listener exists before
    ``ready`` is announced, so no go is missed.
    """
    link = _MasterLink()
    try:
        return _gate_wait(link, gate, version, timeout)
    finally:
        link.close()


def _gate_wait(link, gate, version, timeout):
    """:py:func:`_await_gate` on ``link``."""
    minion = os.getppid()  # the salt-minion this job process runs under
    with salt.utils.event.get_event("minion", opts=__opts__, listen=True) as bus:
        deadline = time.monotonic() + timeout
        decision, reason, age = _ask_gate(link, gate, 0)
        if decision == "cancel":
            return "cancelled: " + str(reason or "by the runner"), "the master"
        ask_master = decision != "unknown"
        # The runner waits for this job to take its go from the master only when it asks there.
        _phase("ready", version, gate=gate, asks_master=ask_master)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return f"not released within {timeout} s", None
            if os.getppid() != minion:
                # Its salt-minion stopped (a stopping minion leaves its jobs running):
                # no go can come through it, and an orphan waiting here would hold the
                # node's state queue when the minion is back.
                return "its salt-minion stopped", None
            wait_here = min(remaining, 1)
            if ask_master:
                decision, reason, age = _ask_gate(link, gate, round(min(remaining, GATE_POLL), 3))
                if decision == "go":
                    if os.getppid() != minion:
                        return "its salt-minion stopped", None  # the runner hears nothing and moves on
                    if age is not None and age <= GATE_FRESH and _confirm_start(link, gate):
                        return None, "the master"
                    # Too old, or its start not acknowledged: the runner may have moved on
                    # (it then sends the go on the bus, and only that one counts).
                    ask_master = False
                    continue
                if decision == "cancel":
                    return "cancelled: " + str(reason or "by the runner"), "the master"
                if decision == "unknown":
                    ask_master = False  # the event bus only, from now on
                elif decision == "wait":
                    wait_here = 0.01  # the bus has had its chance meanwhile; look, then ask again
            event = bus.get_event(wait=wait_here, tag="expressware/gate/", full=True, auto_reconnect=True)
            if not event:
                continue
            data = event.get("data") or {}
            if event["tag"] == GATE_GO and data.get("gate") == gate:
                return None, "its event bus"
            if event["tag"] == GATE_CANCEL and gate in (data.get("gates") or []):
                return "cancelled: " + str(data.get("reason") or "by the runner"), "its event bus"


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


def _check_args(name, applications, timeout, lease_wait, reboot, enforce, lease, gate=None, gate_timeout=0):
    __salt__["expressware.validate_version"](name)
    if gate is not None and (not isinstance(gate, str) or not _GATE_TOKEN.match(gate)):
        raise SaltInvocationError(f"gate must be a token of letters, digits, '.', '_', ':' or '-', not {gate!r}")
    if isinstance(gate_timeout, bool) or not isinstance(gate_timeout, (int, float)) or not 0 < gate_timeout <= 7 * 86400:
        raise SaltInvocationError(f"gate_timeout must be a number of seconds between 1 and 604800, not {gate_timeout!r}")
    if not isinstance(applications, list) or not all(isinstance(a, str) and a for a in applications):
        raise SaltInvocationError(f"applications must be a list of service names, not {applications!r}")
    for value, what in ((timeout, "timeout"), (lease_wait, "lease_wait")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400:
            raise SaltInvocationError(f"{what} must be a number of seconds between 0 and 86400, not {value!r}")
    for value, what in ((reboot, "reboot"), (enforce, "enforce"), (lease, "lease")):
        if not isinstance(value, bool):
            raise SaltInvocationError(f"{what} must be True or False, not {value!r}")


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
        runner's go: asked of the master (``expressware_lease.wait_gate`` through
        ``publish.runner``), or the event ``expressware/gate/go`` with ``gate`` in
        its data on the minion's event bus. Not released (cancelled, timed out, or
        the runner is gone): nothing was changed.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    applications = [] if applications is None else applications
    if cluster is None:
        cluster = __salt__["config.get"]("expressware:cluster", "default")
    try:
        _check_args(name, applications, timeout, lease_wait, reboot, enforce, lease, gate, gate_timeout)
        decision = __salt__["expressware.check_update"](name, enforce=enforce, compat=compat)
    except (SaltInvocationError, CommandExecutionError) as exc:
        return dict(ret, result=False, comment=str(exc))

    use_lease = lease and not _masterless()
    if decision["action"] == "refuse":
        return dict(ret, result=False, comment=f"Refused: {decision['reason']}")

    if decision["action"] == "none":
        return _already_there(ret, name, timeout, cluster if use_lease else None)

    if not sia:
        return dict(ret, result=False, comment=f"eXpressWare {name} needs to be installed ({decision['reason']}) but no sia was given")

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
        "installer": "--install-node" + (" --use-rpms" if staged else " (builds RPMs)") + (" --reboot" if reboot else ""),
        "applications_started": list(applications),
    }
    if decision["action"] == "activate":
        plan["installer"] = "none: restart the services (or reinstall with --reboot if they do not start)"
    if __opts__["test"]:
        lease_note = (
            f" after taking the update lease of cluster {cluster}" if use_lease
            else " (masterless: no cluster update lease)" if lease else ""
        )
        return dict(ret, result=None, changes=plan,
                    comment=f"eXpressWare would be updated {decision['installed']} -> {name}{lease_note}: {decision['reason']}")

    comments = []
    if gate is not None:
        not_released, how = _await_gate(gate, name, gate_timeout)
        if not_released:
            return dict(ret, result=False, comment=f"Not released ({not_released}); nothing was changed on this node")
        comments.append(f"released by the rolling runner (gate {gate}, through {how})")
    if use_lease:
        try:
            granted, info = _acquire_lease(cluster, lease_wait, poll=__salt__["config.get"]("expressware:lease_poll", 1))
        except CommandExecutionError as exc:
            return dict(ret, result=False, comment=str(exc))
        if not granted:
            return dict(ret, result=False, comment=(
                f"Deferred: the update lease of cluster {cluster} is held by {info.get('holder')} "
                f"for {info.get('age')} s (waited {lease_wait} s); nothing was changed on this node. "
                "Run the state again later."
            ))
        comments.append(f"took the update lease of cluster {cluster}")
    elif lease:
        comments.append("masterless run: no cluster update lease was taken (nothing prevents two nodes updating at once)")

    changes = ret["changes"]
    try:
        _phase("stopping", name)
        _stop_applications(applications, changes)
        _update_node(decision, name, sia, staged, reboot, enforce, changes, comments)
    except (SaltInvocationError, CommandExecutionError) as exc:
        comments.append(f"FAILED: {exc}")
        if use_lease:
            comments.append(f"the update lease of cluster {cluster} stays with this node; after fixing it run "
                            f"'salt-run expressware_lease.release cluster={cluster}' or apply the state again")
        if applications:
            comments.append("the applications were not started on the broken stack")
        return dict(ret, result=False, changes=changes, comment="; ".join(comments))

    _phase("waiting", name)
    state = __salt__["expressware.wait_active"](timeout=timeout)
    if not state["active"]:
        comments.append(
            f"FAILED: the node did not become active within {timeout} s: " + "; ".join(state["reasons"])
            + f" (installed {state['installed']}, running {state['running']})"
        )
        if applications:
            comments.append("the applications were not started on the broken stack")
        if use_lease:
            comments.append(f"the update lease of cluster {cluster} stays with this node (one node down); release it "
                            f"with 'salt-run expressware_lease.release cluster={cluster}' once the node is fixed")
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
            return dict(ret, result=None, comment=f"eXpressWare {name} is installed and running but the node is not active: would wait up to {timeout} s")
    else:
        # Returns at once on an active node, and announces it (expressware/node/active)
        # like every other successful run, for the rolling runner.
        state = __salt__["expressware.wait_active"](timeout=timeout)
        if not state["active"]:
            return dict(ret, result=False, comment=(
                f"eXpressWare {name} is installed and running, but the node did not become active within {timeout} s: "
                + "; ".join(state["reasons"])))
    comment = f"eXpressWare {name} is installed, running and the node is active"
    if cluster and not __opts__["test"] and _holds_lease(cluster):
        # An earlier run rebooted this node and ended with it; it is back, so the
        # lease it took can go.
        _lease_call("release", cluster)
        comment += f"; released the update lease of cluster {cluster} left from an earlier run"
    return dict(ret, comment=comment)
