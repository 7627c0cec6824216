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

How a rollout goes:

1. **Pre-flight**, in parallel on every targeted minion (``expressware.preflight``),
   before anything is touched: every minion answers, every node is active, versions
   are known, the release-notes rule allows each node's update, the installer is
   reachable. Nodes already on the target are skipped. Any problem: nothing is
   touched, a report says what and where, the exit status is non-zero. A target
   that matches no minion is an error.
2. **Build once, stage everywhere**: nodes are grouped by CPU architecture, OS and
   kernel (grains); ``--build-rpm`` runs once per group on its first node (which
   stays up meanwhile); the RPMs come to the master with ``cp.push`` (while the
   builder, which installs them where they were built, is updated first) and go to
   every other node of the group in one publish (``sia.receive_rpms``, SHA-256 checked).
   Needs ``file_recv: True`` on the master.
3. **One node at a time**: the ``expressware.installed`` state runs on the node as an
   asynchronous job (stop applications, ``dis_services stop``, install with
   ``--use-rpms``, wait until active, start applications). The next node starts only
   after this one's job succeeded and it is **active** on the target, learned from the
   ``expressware/node/active`` event the node fires with its own ``node_state`` (or,
   after a reboot that restarted the minion, the ``expressware`` beacon's event or a
   new ``wait_active``, then a direct ``expressware.node_state``). The listener is
   opened before any job is published; nothing here sleeps. The next node's job is
   published while this one installs, held at a gate (the state's ``gate``): it checks
   and fetches, then waits for ``expressware/gate/go``, which it gets once this node is
   back; a halt, pause or abort cancels it.
4. **Failure halts**: an installer error or a node that is not active within
   ``node_timeout`` (a timeout is a failure) stops the rollout; no further node is
   touched; the cluster's update lease stays taken (one node down at most).

One rollout at a time per cluster: the rollout holds the cluster's update lease
(``expressware_lease``, the same one the state takes under highstate) from start
to finish. The record of every rollout is a JSON file under
``<master cachedir>/expressware/rollouts/``, rewritten atomically after every step:
per node the phase (pending, staged, stopping, installing, waiting, active, failed,
skipped), versions before and after, timestamps; the builds. After a master restart
or a lost ``salt-run``, ``rolling.resume`` continues without redoing finished nodes.

Events (all under ``expressware/rolling/<rollout id>/``): ``start``, ``build/<group>``,
``node/<minion>/begin``, ``node/<minion>/phase``, ``node/<minion>/done``,
``node/<minion>/failed``, ``paused``, ``halted``, ``aborted``, ``finish``; and
``expressware/rolling/refused`` when ``update`` refuses to start (bad input, a failed
pre-flight, or another rollout or a node's state run holds the cluster), with the
reason: a rollout the reactor started has no terminal. Progress is printed on
standard error while ``salt-run`` runs (``progress=False`` to silence it), so
``--out=json`` stays clean.
"""

import base64
import hashlib
import importlib.util
import logging
import os
import secrets
import shutil
import socket
import sys
import time

import salt.client
import salt.utils.event
from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "rolling"

#: Bytes of RPM data per publish when staging.
PAYLOAD = 4 * 1024 * 1024
#: Seconds to wait, at the pre-flight, on a minion asked again (it did not answer).
PREFLIGHT_RETRY = 5


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
    store = _shared("expressware_store")
    plan_lib = _shared("expressware_rollout")
    protocol = _shared("expressware_protocol")
    checks = _shared("expressware_args")
except ImportError as _exc:  # reported by __virtual__
    vendor = store = plan_lib = protocol = checks = None
    _IMPORT_ERROR = str(_exc)


def __virtual__():
    if plan_lib is None:
        return False, f"rolling: {_IMPORT_ERROR}"
    return __virtualname__


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


_refusing = checks.refusing if checks else (lambda func: func)



@_refusing
def plan(tgt, version, sia=None, tgt_type="glob", reboot=False, enforce=False, applications=None,
         node_timeout=1800, compat=None, order=None, sort="name", canary=0, frontend=None,
         cluster=None, build=True, timeout=60):
    """
    Show what :py:func:`update` would do, in what order, which builds, touching nothing.

    Runs the same pre-flight as :py:func:`update` (which also fetches the installer on
    every node to check it is reachable) and returns the plan: order, skipped nodes,
    builds per group, per node the action and the versions. Exit status non-zero
    when the pre-flight finds a problem.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.plan tgt='*' version=5.26.0 sia=salt://expressware/Dolphin_eXpressWare-5.26.0.sh
    """
    args = _check_args(locals())
    with _Driver(args, progress=False) as driver:
        facts, problems = driver.preflight()
        if problems:
            return _problems_report(problems)
        try:
            record = plan_lib.new_record("plan", args["cluster"], args["version"], args["sia"], facts,
                                         args["options"], time.time(), order=args["order"], sort=args["sort"],
                                         frontend_fact=driver.frontend_fact)
        except plan_lib.RolloutError as exc:
            raise SaltInvocationError(str(exc)) from exc
    result = plan_lib.summary(record)
    result.update(status="planned", retcode=0, actions={m: n["action"] for m, n in record["nodes"].items()})
    return result


def update(tgt, version, sia=None, tgt_type="glob", reboot=False, enforce=False, applications=None,
           node_timeout=1800, compat=None, order=None, sort="name", canary=0, frontend=None,
           cluster=None, build=True, timeout=60, progress=True):
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
        Rolling-compatibility data from the release notes (default: each minion's
        pillar/config ``expressware:compat``).
    order, sort
        Node order: the minions listed in ``order`` first, the rest by ``sort``
        (``name`` or ``reverse``).
    canary
        Pause after the first ``canary`` nodes until :py:func:`resume`.
    frontend
        Minion id of the Cluster Management Node, updated (``--install-frontend``)
        after all nodes.
    cluster
        Name of the cluster (its update lease and record); default ``default``.
    build
        Build RPMs once per group and stage them (default); ``False``: every node's
        installer builds for itself.
    timeout
        Seconds to wait for minions to answer short calls (pre-flight, checks).
    progress
        Print progress on standard error.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.update tgt='G@cluster:db1' tgt_type=compound version=5.26.0 \\
            sia=salt://expressware/Dolphin_eXpressWare-5.26.0.sh applications='[ndbmtd]'
    """
    given = dict(locals())
    result = _refusing(_start)(given)
    if result.get("status") == "refused":
        # Said on the bus as well: a rollout the reactor started has no terminal.
        _fire(None, protocol.ROLLING_REFUSED, protocol.refusal_event(
            given["cluster"] or "default", version, result["comment"], problems=result.get("problems"),
            holder=result["lease"]["holder"] if "lease" in result else None))
    return result


def _start(given):
    """:py:func:`update` from its arguments as given (bad ones raise ``SaltInvocationError``)."""
    args = _check_args(given)
    with _Driver(args, progress=given["progress"]) as driver:
        return driver.start()


@_refusing
def resume(rollout=None, cluster=None, skip=None, timeout=60, progress=True):
    """
    Continue a stopped rollout: after a failure the operator fixed (the failed node is
    tried again), a canary pause, an abort, a master restart or a lost ``salt-run``.
    Finished nodes are not touched again. ``skip`` names failed or pending nodes to
    give up on explicitly.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.resume
        salt-run rolling.resume rollout=20261127T101500-1a2b3c skip='[node7]'
    """
    checks.names(skip, "skip")
    record = _find(rollout, cluster)
    args = dict(record["args"], timeout=checks.seconds(timeout, "timeout"))
    with _Driver(args, progress=progress) as driver:
        return driver.resume(record, skip or [])


@_refusing
def abort(rollout=None, cluster=None):
    """
    Stop a rollout. A running one stops after the node it is working on; the record
    stays (``rolling.resume`` can continue it) and the cluster's update lease is
    released.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.abort
    """
    record = _find(rollout, cluster)
    rollouts = _rollouts()
    if record["status"] == plan_lib.DONE:
        raise SaltInvocationError(f"rollout {record['id']} is already done")
    if record["status"] == plan_lib.RUNNING and store.driver_alive(record):
        rollouts.request_abort(record["id"])
        return {"rollout": record["id"], "status": "aborting",
                "comment": f"the driver (pid {record['driver']['pid']}) stops after the current node"}
    plan_lib.abort(record, time.time())
    rollouts.save(record)
    _leases().release(record["cluster"], holder=_holder(record["id"]))
    _fire(None, protocol.rolling_tag(record["id"], "aborted"), {"reason": record["reason"]})
    return plan_lib.summary(record)


@_refusing
def status(rollout=None, cluster=None):
    """
    Show a rollout (default: the latest one): status, reason, per node phase and
    versions, builds, and who holds the cluster's update lease since when.

    CLI Example:

    .. code-block:: bash

        salt-run rolling.status
        salt-run rolling.status cluster=db1
    """
    record = _find(rollout, cluster, required=False)
    if record is None:
        return {"rollout": None, "comment": "no rollout recorded", "leases": _leases().all()}
    result = plan_lib.summary(record)
    result["lease"] = _leases().get(record["cluster"])
    if record["status"] == plan_lib.RUNNING:
        result["driver"] = dict(record.get("driver") or {}, alive=store.driver_alive(record))
        if not result["driver"]["alive"]:
            result["comment"] = "the driver of this rollout is gone (master restart?): run rolling.resume"
    result["log"] = record["log"][-10:]
    return result


# ---------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------


def _rollouts():
    return store.rollout_store(__opts__["cachedir"])


def _leases():
    return store.lease_store(__opts__["cachedir"])


def _holder(rollout_id):
    return f"rolling:{rollout_id}"


def _find(rollout, cluster, required=True):
    rollouts = _rollouts()
    try:
        if rollout is not None:
            return rollouts.load(rollout)
        if cluster is not None:
            store.check_name(cluster, "cluster")
        record = rollouts.latest(cluster)
    except ValueError as exc:
        raise SaltInvocationError(str(exc)) from exc
    if record is None and required:
        raise SaltInvocationError("no rollout recorded" + (f" for cluster {cluster}" if cluster else ""))
    return record


def _check_args(given):
    """Validate every argument before anything is touched; return them normalised."""
    try:
        version = vendor.check_version(given["version"] if isinstance(given["version"], str) else repr(given["version"]))
    except ValueError as exc:
        raise SaltInvocationError(f"{exc} (quote it if YAML made it a number)") from exc
    tgt, tgt_type = checks.target(given["tgt"], given["tgt_type"])
    sia = checks.installer(given["sia"])
    for flag in ("reboot", "enforce", "build"):
        checks.flag(given[flag], flag)
    applications = checks.names(given["applications"] or [], "applications", "service names", nonempty=True)
    order = checks.names(given["order"], "order")
    checks.choice(given["sort"], "sort", ("name", "reverse"))
    canary = checks.count(given["canary"], "canary", "nodes (0: no canary)")
    frontend = checks.minion_id(given["frontend"], "frontend")
    if frontend is not None and sia is None:
        raise SaltInvocationError("frontend needs sia")
    try:
        cluster = store.check_name(given["cluster"] or "default", "cluster")
        vendor.validate_compat(given["compat"])
    except ValueError as exc:
        raise SaltInvocationError(str(exc)) from exc
    options = {
        "reboot": given["reboot"],
        "enforce": given["enforce"],
        "applications": applications,
        "node_timeout": checks.seconds(given["node_timeout"], "node_timeout"),
        "compat": given["compat"],
        "canary": canary,
        "frontend": frontend,
        "build": given["build"],
    }
    return {
        "tgt": tgt, "tgt_type": tgt_type, "version": version, "sia": sia, "cluster": cluster,
        "order": order, "sort": given["sort"], "timeout": checks.seconds(given["timeout"], "timeout"), "options": options,
    }


def _problems_report(problems):
    return {
        "status": "refused",
        "comment": "pre-flight failed; nothing was touched",
        "problems": {(minion or "target"): problem for minion, problem in problems},
        "retcode": 1,
    }


def _fire(listener, tag, data):
    try:
        if listener is not None:
            listener.fire_event(data, tag)
            return
        with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as event:
            event.fire_event(data, tag)
    except Exception:  # pylint: disable=broad-except
        log.warning("could not fire %s", tag, exc_info=True)


class _LostMaster(Exception):
    """The master stopped answering: the rollout is interrupted, not failed."""


class _Driver:
    """The thin Salt side: publish jobs, listen to the bus, record, print."""

    def __init__(self, args, progress):
        self.args = args
        self.progress = progress
        self.client = None
        self.listener = None
        self.record = None
        self.prepared = None
        self.frontend_fact = None
        self.rollouts = _rollouts()
        self.leases = _leases()

    def __enter__(self):
        self.client = salt.client.get_local_client(__opts__["conf_file"])
        # The listener exists before any job is published, so no event is lost.
        self.listener = salt.utils.event.get_event(
            "master", sock_dir=__opts__["sock_dir"], opts=__opts__, listen=True)
        return self

    def __exit__(self, *exc):
        for thing in (self.listener, self.client):
            try:
                thing.destroy()
            except Exception:  # pylint: disable=broad-except
                pass

    # -- output ----------------------------------------------------------

    def say(self, message, record=True):
        """Progress on standard error, and (``record``) in the rollout's log."""
        if self.record is not None and record:
            plan_lib.log(self.record, time.time(), message)
        if self.progress:
            prefix = f"[rolling {self.record['id']}] " if self.record else "[rolling] "
            print(time.strftime("%H:%M:%S ") + prefix + message, file=sys.stderr, flush=True)

    def fire(self, suffix, data):
        _fire(self.listener, protocol.rolling_tag(self.record["id"], suffix), dict(data, rollout=self.record["id"]))

    def save(self):
        self.record["updated"] = time.time()
        self.rollouts.save(self.record)

    def save_node(self, minion):
        """Record a step that changed one node (cheap, whatever the cluster size)."""
        self.record["updated"] = time.time()
        self.rollouts.save_node(self.record, minion)

    # -- minion calls ----------------------------------------------------

    def call(self, tgt, fun, arg=(), kwarg=None, tgt_type="list", timeout=None):
        tgt = list(tgt) if isinstance(tgt, (list, tuple, set)) else tgt
        try:
            full = self.client.cmd(tgt, fun, arg=list(arg), kwarg=kwarg or {}, tgt_type=tgt_type,
                                   timeout=timeout or self.args["timeout"], full_return=True)
        except Exception as exc:  # pylint: disable=broad-except
            raise _LostMaster(f"{fun} could not be published: {exc}") from exc
        # Salt fills in a targeted minion that did not answer with the text "Minion did
        # not return. [No response] ..." (out: no_return); taken as its answer, the
        # pre-flight reported "error: Minion did not return ..." instead of "did not
        # answer". Such a minion is False here, like one Salt leaves out.
        return {minion: False if not isinstance(data, dict) or data.get("out") == "no_return" else data.get("ret")
                for minion, data in full.items()}

    def call_one(self, minion, fun, arg=(), kwarg=None, timeout=None):
        ret = self.call([minion], fun, arg, kwarg, timeout=timeout)
        if minion not in ret or ret[minion] is False:
            raise RuntimeError(f"{minion} did not answer {fun}")
        return ret[minion]

    # -- pre-flight --------------------------------------------------------

    def preflight(self):
        args = self.args
        opts = args["options"]
        self.say(f"pre-flight of {args['tgt']!r} ({args['tgt_type']}) for {args['version']}")
        kwarg = {"sia": args["sia"], "enforce": opts["enforce"]}
        if opts["compat"] is not None:
            kwarg["compat"] = opts["compat"]
        facts = self.call(args["tgt"], "expressware.preflight", [args["version"]], kwarg,
                          tgt_type=args["tgt_type"])
        silent = sorted(minion for minion, fact in facts.items() if plan_lib.did_not_answer(fact))
        if silent:
            # A job published to a minion whose link to the publisher is not back yet
            # (after a master restart it reconnects with a back-off of seconds) is lost
            # without a trace: ask those once more, briefly (Salt keeps waiting for a
            # job the minion reports running).
            self.say(f"pre-flight: no answer from {', '.join(silent)}; asking once more")
            again = self.call(silent, "expressware.preflight", [args["version"]], kwarg, timeout=PREFLIGHT_RETRY)
            facts.update({minion: again[minion] for minion in silent
                          if not plan_lib.did_not_answer(again.get(minion))})
        expected = set(facts)
        problems = plan_lib.preflight_problems(expected, facts, args["version"])
        todo = [m for m, f in facts.items() if isinstance(f, dict) and f.get("decision", {}).get("action") != "none"]
        if not problems and todo and not args["sia"]:
            problems.append((None, f"{len(todo)} node(s) need {args['version']} but no sia was given"))
        if not problems and opts["build"] and len(todo) > 1 and not __opts__.get("file_recv"):
            problems.append((None, "staging built RPMs needs file_recv: True in the master configuration "
                                   "(or build=False: every node builds for itself)"))
        if opts["frontend"] and not problems:
            problem = self.preflight_frontend(opts["frontend"])
            if problem:
                problems.append((opts["frontend"], problem))
        for minion, problem in problems:
            self.say(f"pre-flight: {minion or 'target'}: {problem}")
        return facts, problems

    def preflight_frontend(self, minion):
        """Check the Cluster Management Node before anything is touched; the problem, or None."""
        args = self.args
        answer = self.call([minion], "expressware.frontend_preflight", [args["version"]],
                           {"sia": args["sia"], "enforce": args["options"]["enforce"]}).get(minion)
        if not isinstance(answer, dict):
            return "the frontend minion did not answer" if not answer else f"frontend pre-flight failed: {answer}"
        self.frontend_fact = answer
        if answer.get("error"):
            return f"frontend: {answer['error']}"
        if answer["decision"]["action"] == "refuse":
            return f"frontend: {answer['decision']['reason']}"
        if answer.get("sia_error"):
            return f"frontend: installer not reachable: {answer['sia_error']}"
        return None

    # -- the rollout -----------------------------------------------------

    def start(self):
        args = self.args
        rollout_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        lease = self.leases.acquire(args["cluster"], _holder(rollout_id), purpose=f"rolling update to {args['version']}")
        if not lease["granted"]:
            reason = (f"cluster {args['cluster']} is busy: its update lease is held by {lease['holder']} "
                      f"for {lease['age']} s")
            self.say(f"refused: {reason}")
            return {"status": "refused", "comment": reason, "lease": lease, "retcode": 1}
        try:
            facts, problems = self.preflight()
        except _LostMaster as exc:
            self.leases.release(args["cluster"], holder=_holder(rollout_id))
            return {"status": "refused", "comment": str(exc), "retcode": 1}
        if problems:
            self.leases.release(args["cluster"], holder=_holder(rollout_id))
            return _problems_report(problems)
        try:
            self.record = plan_lib.new_record(rollout_id, args["cluster"], args["version"], args["sia"], facts,
                                              args["options"], time.time(), order=args["order"], sort=args["sort"],
                                              frontend_fact=self.frontend_fact)
        except plan_lib.RolloutError as exc:
            self.leases.release(args["cluster"], holder=_holder(rollout_id))
            raise SaltInvocationError(str(exc)) from exc
        self.record["args"] = {k: v for k, v in args.items() if k != "timeout"}
        self.say(f"rollout {rollout_id}: {len(self.record['order'])} node(s) in order "
                 f"{', '.join(self.record['order']) or '(none)'}")
        self.fire("start", {"version": args["version"], "order": self.record["order"], "cluster": args["cluster"]})
        return self.run()

    def resume(self, record, skip):
        if record["status"] == plan_lib.RUNNING and store.driver_alive(record):
            raise SaltInvocationError(f"rollout {record['id']} is running (driver pid {record['driver']['pid']})")
        lease = self.leases.acquire(record["cluster"], _holder(record["id"]), purpose=f"rolling update to {record['version']}")
        if not lease["granted"]:
            raise SaltInvocationError(f"cluster {record['cluster']}'s update lease is held by {lease['holder']}")
        self.record = record
        try:
            plan_lib.resume(record, time.time(), skip=skip)
        except plan_lib.RolloutError as exc:
            raise SaltInvocationError(str(exc)) from exc
        self.rollouts.clear_abort(record["id"])
        self.say(f"resuming; in flight: {', '.join(plan_lib.in_flight(record)) or 'none'}")
        self.cancel_open_gates()
        return self.run()

    def run(self):
        record = self.record
        record["driver"] = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        self.save()
        try:
            while True:
                if self.rollouts.abort_requested(record["id"]):
                    plan_lib.abort(record, time.time())
                    self.rollouts.clear_abort(record["id"])
                    self.leases.release(record["cluster"], holder=_holder(record["id"]))
                    self.say("aborted by the operator; the cluster's update lease is released")
                    self.fire("aborted", {"reason": record["reason"]})
                    break
                action = plan_lib.next_action(record)
                if action is None:
                    break
                if action[0] in ("build", "stage"):
                    # The first node to update gets ready while the RPMs are built and staged.
                    self.prepare(plan_lib.upcoming(record))
                getattr(self, "do_" + action[0])(*action[1:])
                if action[0] == "update":
                    self.save_node(action[1])
                else:
                    self.save()
        except _LostMaster as exc:
            self.say(f"interrupted: {exc}; the record is kept, run rolling.resume when the master is back")
            self.save()
            result = plan_lib.summary(record)
            result.update(status="interrupted", comment=str(exc), retcode=2)
            return result
        finally:
            try:
                self.cancel_prepared(f"the rollout is {record['status']}")
            except _LostMaster:
                pass  # the next driver (rolling.resume) cancels it: its gate is in the record
        self.save()
        result = plan_lib.summary(record)
        result["retcode"] = 0 if record["status"] in (plan_lib.DONE, plan_lib.PAUSED) else 1
        self.say(f"{record['status']}" + (f": {record['reason']}" if record["reason"] else ""))
        return result

    # -- actions ---------------------------------------------------------

    def do_build(self, key):
        group = self.record["groups"][key]
        builder, sia = group["builder"], self.record["sia"]
        self.say(f"building RPMs for {key} on {builder} (it stays up)")
        try:
            workdir = self.record["nodes"][builder]["workdir"]
            source = os.path.join(__opts__["cachedir"], "minions", builder, "files", workdir.lstrip("/"), "node_RPMS")
            # cp.push keeps what earlier rollouts pushed there; RPMs of another
            # version would be staged too and the installer would refuse the mix.
            shutil.rmtree(source, ignore_errors=True)
            # One job: clear old RPMs, build. The push to the master comes with the
            # staging (do_stage), while the builder itself is updated: it uses its RPMs
            # where they were built, so its go-ahead need not wait for the push.
            built = self.call_one(builder, "sia.build_rpm", [sia], {"clear": True, "workdir": workdir},
                                  timeout=self.record["options"]["node_timeout"])
            if not isinstance(built, dict):
                raise RuntimeError(f"build on {builder} failed: {built}")
        except RuntimeError as exc:
            plan_lib.halt(self.record, f"build for {key} failed: {exc}", time.time())
            self.say(f"halted: {self.record['reason']}")
            self.fire("halted", {"reason": self.record["reason"]})
            return
        group["source"] = source
        group["builder_workdir"] = workdir
        plan_lib.mark_built(self.record, key, built["node_rpms"], time.time())
        self.fire(f"build/{key}", {"builder": builder, "rpms": built["node_rpms"]})

    def do_stage(self, key, background=False):
        """Bring the group's RPMs from its builder to the master (unless they are there
        already), then to the group's other nodes. ``background`` (while a node is in
        flight): a failure is not final yet, the driver tries again before the next
        node (the builder may be the node in flight, rebooting); True when staged."""
        group = self.record["groups"][key]
        receivers = [m for m in group["nodes"] if m != group["builder"]]
        self.say(f"staging {len(group['rpms'])} RPM(s) of {key} on {len(receivers)} node(s)")
        try:
            if receivers:
                self._push(group)
                self._send(receivers, group["source"], group["rpms"])
        except RuntimeError as exc:
            if background:
                self.say(f"staging of {key} not done yet ({exc}); again before the next node")
                return False
            plan_lib.halt(self.record, f"staging for {key} failed: {exc}", time.time())
            self.say(f"halted: {self.record['reason']}")
            self.fire("halted", {"reason": self.record["reason"]})
            return False
        plan_lib.mark_staged(self.record, key, time.time())
        return True

    def _missing(self, group):
        return [name for name in group["rpms"] if not os.path.isfile(os.path.join(group["source"], name))]

    def _push(self, group):
        """The builder's ``node_RPMS/`` to the master (``cp.push_dir``), unless it has them."""
        if not self._missing(group):
            return  # pushed before an interruption
        builder = group["builder"]
        pushed = self.call([builder], "cp.push_dir", [os.path.join(group["builder_workdir"], "node_RPMS")],
                           timeout=self.record["options"]["node_timeout"]).get(builder)
        if pushed is False:
            # No answer, or cp.push_dir itself said False (Salt answers both the same way).
            raise RuntimeError(f"{builder} did not push its RPMs to the master (no answer, or cp.push_dir "
                               "failed: file_recv?)")
        if pushed is not True:
            raise RuntimeError(f"{builder} could not push its RPMs to the master (file_recv?): {pushed}")
        missing = self._missing(group)
        if missing:
            raise RuntimeError(f"the master did not receive {', '.join(missing)} from {builder}")

    def _send(self, minions, source, names):
        """Copy the RPMs ``names`` of ``source`` into every minion's ``<workdir>/node_RPMS``
        (``sia.receive_rpms``): one publish per ``PAYLOAD`` bytes reaches all of them in
        parallel, whatever their work directories; then compare the SHA-256 digests."""
        expected, batches, batch, size = {}, [], [], 0
        for name in names:
            with open(os.path.join(source, name), "rb") as handle:
                content = handle.read()
            expected[name] = hashlib.sha256(content).hexdigest()
            for offset in range(0, max(len(content), 1), PAYLOAD):
                piece = content[offset:offset + PAYLOAD]
                if batch and size + len(piece) > PAYLOAD:
                    batches.append(batch)
                    batch, size = [], 0
                batch.append({"name": name, "data": base64.b64encode(piece).decode(), "append": offset > 0})
                size += len(piece)
        batches.append(batch)
        ret = {}
        for number, pieces in enumerate(batches):
            ret = self.call(minions, "sia.receive_rpms", kwarg={"files": pieces, "clear": number == 0})
            failed = {m: ret.get(m) for m in minions if not isinstance(ret.get(m), dict)}
            if failed:
                raise RuntimeError("copying the RPMs failed on " + ", ".join(
                    f"{m}: {'no answer' if a is False else a}" for m, a in sorted(failed.items())))
        wrong = sorted(m for m in minions if ret[m].get("sha256") != expected)
        if wrong:
            raise RuntimeError(f"the RPMs on {', '.join(wrong)} differ from the built ones (SHA-256)")

    def do_pause(self, reason):
        plan_lib.pause(self.record, reason, time.time())
        self.say(f"paused: {reason}")
        self.fire("paused", {"reason": reason})

    def do_finish(self):
        plan_lib.finish(self.record, time.time())
        self.leases.release(self.record["cluster"], holder=_holder(self.record["id"]))
        self.fire("finish", {"summary": plan_lib.summary(self.record)["counts"]})

    def do_frontend(self, minion):
        record = self.record
        try:
            # Looked at again: after a resume the installation may have happened already.
            installed = self.call_one(minion, "expressware.frontend_version")
            if installed == record["version"] and not record["options"]["enforce"]:
                self.say(f"the frontend {minion} is on {installed} already")
                plan_lib.mark_frontend(record, True, time.time(), version=installed, note="already on the target")
                return
            self.say(f"updating the frontend {minion} (--install-frontend)")
            ret = self.call_one(minion, "sia.install_frontend", [record["sia"]],
                                {"enforce": record["options"]["enforce"]},
                                timeout=record["options"]["node_timeout"])
            if not isinstance(ret, dict):
                raise RuntimeError(str(ret))
            installed = self.call_one(minion, "expressware.frontend_version")
            if installed != record["version"]:
                raise RuntimeError(f"the installer succeeded, but the frontend packages are on {installed}")
        except RuntimeError as exc:
            plan_lib.mark_frontend(record, False, time.time(), error=str(exc))
            self.say(f"halted: {record['reason']}")
            self.fire("halted", {"reason": record["reason"]})
            return
        plan_lib.mark_frontend(record, True, time.time(), version=installed)
        self.say(f"the frontend {minion} is on {installed}")

    def _state_kwarg(self):
        record, opts = self.record, self.record["options"]
        kwarg = {
            "sia": record["sia"],
            "use_rpms": True if opts["build"] else None,
            "reboot": opts["reboot"],
            "enforce": opts["enforce"],
            "applications": opts["applications"],
            "timeout": opts["node_timeout"],
            "lease": False,  # this rollout holds the cluster's lease
            "cluster": record["cluster"],
            "queue": True,
        }
        if opts["compat"] is not None:
            kwarg["compat"] = opts["compat"]
        return kwarg

    # -- preparing the next node -------------------------------------------
    #
    # The next node's job is published while the current node is in flight. Its
    # state checks the node and fetches the installer, announces "ready" and waits
    # at a gate on its own event bus (the state's ``gate`` argument); it changes
    # nothing before the runner releases it with an ``expressware/gate/go`` event,
    # which happens only once the current node is back active. The checks,
    # installer fetch and state start-up are then off the critical path: the
    # handover is one publish.

    def prepare(self, minion):
        """Publish ``minion``'s job ahead of its turn, held at a gate."""
        if minion is None or (self.prepared and self.prepared["minion"] == minion):
            return
        self.cancel_prepared("superseded")
        opts = self.record["options"]
        gate = protocol.new_gate(self.record["id"])
        kwarg = dict(self._state_kwarg(), gate=gate,
                     # Bounded even if the runner is lost: the builds and the current node first.
                     gate_timeout=2 * opts["node_timeout"] + self.args["timeout"])
        try:
            jid = self.client.cmd_async([minion], "state.single", ["expressware.installed", self.record["version"]],
                                        tgt_type="list", kwarg=kwarg)
        except Exception:  # pylint: disable=broad-except
            jid = None  # it will be updated the ordinary way at its turn
        if not jid:
            return
        self.prepared = {"minion": minion, "gate": gate, "jid": jid, "ready": False, "ret": None, "lost": False}
        plan_lib.mark_prepared(self.record, minion, gate, time.time())
        self.save_node(minion)
        self.say(f"{minion}: prepared (checks, installer fetch); it waits for its go-ahead", record=False)

    def watch_prepared(self, tag, data):
        """Follow the prepared job in the events read while waiting for something else."""
        prepared = self.prepared
        if not prepared:
            return
        if tag == f"salt/job/{prepared['jid']}/ret/{prepared['minion']}":
            prepared["ret"] = data  # it ended before its go: it is not used
        elif (tag == "expressware/node/phase" and data.get("id") == prepared["minion"]
              and (data.get("data") or {}).get("gate") == prepared["gate"]):
            prepared["ready"] = (data.get("data") or {}).get("phase") == "ready"
        elif tag == f"salt/minion/{prepared['minion']}/start":
            prepared["lost"] = True  # the minion restarted: the job is gone

    def _gate_event(self, minion, tag, data):
        try:
            return self.client.cmd_async([minion], "event.fire", [data, tag], tgt_type="list")
        except Exception:  # pylint: disable=broad-except
            return None

    def _wait_ready(self, prepared):
        """Follow ``prepared`` (``timeout`` seconds at most) until it is ready at its gate,
        has ended, or was lost with its minion; it is no longer the prepared job after."""
        self.prepared = prepared  # watch_prepared follows it
        deadline = time.monotonic() + self.args["timeout"]
        try:
            while not (prepared["ready"] or prepared["ret"] or prepared["lost"]) and time.monotonic() < deadline:
                event = self.listener.get_event(wait=max(0.01, min(1, deadline - time.monotonic())), full=True,
                                                auto_reconnect=True)
                if event:
                    self.watch_prepared(event["tag"], event["data"])
        finally:
            self.prepared = None

    def _end_unready(self, prepared, reason):
        """End a prepared job that is not (known to be) at its gate: the cancel, should it
        listen after all, and a kill (no go was sent: it changed nothing)."""
        self._gate_event(prepared["minion"], protocol.GATE_CANCEL, {"gates": [prepared["gate"]], "reason": reason})
        self.call([prepared["minion"]], "saltutil.kill_job", [prepared["jid"]], timeout=10)

    def cancel_prepared(self, reason):
        """Make sure a prepared job does not go on (it ends having changed nothing).

        A cancel event reaches only a job that already listens at its gate: one still
        in its checks would miss it and then hold the node's state queue until its
        gate_timeout. So first wait (``timeout`` at most) until it is ready or has
        ended; a job that is not ready by then is killed (no go was sent: it changed
        nothing)."""
        prepared, self.prepared = self.prepared, None
        if not prepared:
            return
        self._wait_ready(prepared)
        if prepared["ret"]:
            return
        data = {"gates": [prepared["gate"]], "reason": reason}
        if prepared["ready"] and self.call([prepared["minion"]], "event.fire", [data, protocol.GATE_CANCEL],
                                           timeout=10).get(prepared["minion"]) is True:
            plan_lib.clear_gate(self.record, prepared["minion"])
            self.save_node(prepared["minion"])
            return
        self._end_unready(prepared, reason)

    def cancel_gate(self, minion, reason):
        """Cancel the gate recorded for ``minion`` and wait for the minion to acknowledge it
        (a publish to a minion that has not reconnected yet, after a master restart, is
        lost: the job would hold the node's state queue). True when acknowledged."""
        gate = self.record["nodes"][minion].get("gate")
        if not gate:
            return True
        data = {"gates": [gate], "reason": reason}
        if self.call([minion], "event.fire", [data, protocol.GATE_CANCEL]).get(minion) is not True:
            return False
        plan_lib.clear_gate(self.record, minion)
        self.save_node(minion)
        return True

    def cancel_open_gates(self):
        """After a lost driver: cancel the prepared jobs it may have left waiting."""
        gates = plan_lib.open_gates(self.record)
        if gates:
            self.say(f"cancelling the prepared job(s) of an earlier driver on {', '.join(sorted(gates))}")
            for minion in gates:
                if not (self._reachable(minion) and self.cancel_gate(minion, "a new driver took over")):
                    self.say(f"{minion}: could not cancel its prepared job now; again at its turn")

    def _release(self, minion):
        """The prepared job's jid once released, or None: then it is updated the ordinary way."""
        prepared = self.prepared
        if not prepared or prepared["minion"] != minion:
            self.cancel_prepared("another node comes first")
            return None
        self._wait_ready(prepared)
        if prepared["ready"] and not prepared["ret"] and not prepared["lost"]:
            return prepared
        self.say(f"{minion}: its prepared job " + (
            "ended before its turn" if prepared["ret"] else "was lost with its minion" if prepared["lost"]
            else f"was not ready within {self.args['timeout']} s") + "; it is updated the ordinary way")
        if not prepared["ret"]:
            # Not ready in time, or its minion restarted (a stopping salt-minion leaves
            # its jobs running): make sure it cannot hold the node's state queue. No go
            # was sent, so it changed nothing.
            self._end_unready(prepared, "not ready in time")
        return None

    # -- one node ------------------------------------------------------------

    def do_update(self, minion):
        record, opts = self.record, self.record["options"]
        position = record["order"].index(minion) + 1
        resumed = record["nodes"][minion]["phase"] in plan_lib.IN_FLIGHT
        prepared = None if resumed else self._release(minion)
        # A released job answered its go-ahead already: it is reachable. Else ask, since
        # a job published to a minion that has not reconnected (after a master
        # restart) would be lost without a trace.
        if prepared is None and not self._reachable(minion):
            plan_lib.halt(record, f"{minion} did not answer for {self.args['timeout']} s before its turn; "
                                  "nothing was started on it", time.time())
            self.say(f"halted: {record['reason']}")
            self.fire("halted", {"reason": record["reason"]})
            return None
        cancelled_gate = record["nodes"][minion].get("gate") if prepared is None else None
        if prepared is None and not self.cancel_gate(minion, "updated the ordinary way"):
            # A prepared job left waiting would hold the node's state queue.
            plan_lib.halt(record, f"{minion} did not acknowledge the cancel of its prepared job; "
                                  "nothing was started on it", time.time())
            self.say(f"halted: {record['reason']}")
            self.fire("halted", {"reason": record["reason"]})
            return None
        plan_lib.mark_phase(record, minion, plan_lib.STOPPING, time.time())
        self.save_node(minion)
        self.say(f"{minion} ({position}/{len(record['order'])}): "
                 + ("continuing the interrupted update" if resumed else "updating"))
        self.fire(f"node/{minion}/begin", {"minion": minion, "position": position})
        if prepared is not None:
            jid = prepared["jid"]
            # The go-ahead, acknowledged: the node starts on it at once (the wait for
            # the acknowledgement is not on the critical path).
            go = self.call([minion], "event.fire", [{"gate": prepared["gate"]}, protocol.GATE_GO])
            if go.get(minion) is not True and not self._reachable(minion):
                # A prepared job changes nothing without its go; the node reported no step.
                plan_lib.unmark_begun(record, minion, time.time(),
                                      f"{minion} did not answer for {self.args['timeout']} s before its turn "
                                      "(its go-ahead was not acknowledged); nothing was started on it")
                self.say(f"halted: {record['reason']}")
                self.fire("halted", {"reason": record["reason"]})
                return None
            if go.get(minion) is not True:
                self._gate_event(minion, protocol.GATE_GO, {"gate": prepared["gate"]})  # back again: once more
            plan_lib.clear_gate(record, minion)
            self.save_node(minion)
        elif (jid := self._running_update(minion, cancelled_gate) if resumed else None):
            # The update a lost driver started is still running: a second job would wait
            # in the node's state queue (Salt 3008.4 fails such a queued state.single).
            self.say(f"{minion}: its update (job {jid}) still runs; following it")
        else:
            try:
                jid = self.client.cmd_async([minion], "state.single", ["expressware.installed", record["version"]],
                                            tgt_type="list", kwarg=self._state_kwarg())
            except Exception as exc:  # pylint: disable=broad-except
                raise _LostMaster(f"could not publish the update of {minion}: {exc}") from exc
            if not jid:
                return self._failed(minion, "the job could not be published (minion not connected?)")
        deadline = time.monotonic() + opts["node_timeout"]
        # While it is down: stage the RPMs the nodes after it need (its events wait in
        # the listener). A failure halts the rollout once this node is done.
        tried = []
        while (work := plan_lib.background_action(record, tried)) is not None:
            tried.append(work)
            getattr(self, "do_" + work[0])(*work[1:], background=True)
            self.save()
        outcome, evidence = self._await(minion, jid, deadline, resumed=resumed)
        if outcome is not None:
            return self._failed(minion, outcome)
        # Active by the node's own look at itself, made by this job (the event's node
        # state); after a restart or a beacon's word, a direct look instead.
        state = evidence or self._node_state(minion)
        if evidence is None and state["state"] == "unknown" and self._reachable(minion):
            # No answer: the minion was restarting (its salt-minion stopped while the
            # job finished); without this a node active on the target was recorded
            # as failed. Ask again now that it is connected.
            state = self._node_state(minion)
        if state["active"] and state["running"] == record["version"] and state["installed"] == record["version"]:
            plan_lib.mark_active(record, minion, state["running"], time.time())
            self.say(f"{minion}: active on {state['running']}")
            self.fire(f"node/{minion}/done", {"minion": minion, "version": state["running"]})
            return None
        return self._failed(minion, f"reported active, but a direct check finds it {state['state']} "
                                    f"(installed {state['installed']}, running {state['running']}): "
                                    + "; ".join(state["reasons"]), state)

    def _reachable(self, minion):
        """Is the minion connected to the master's publisher right now?

        Checked before each node's job: a job published to a minion that has not
        reconnected yet (after a master restart) would be lost without a trace.
        """
        deadline = time.monotonic() + self.args["timeout"]
        while time.monotonic() < deadline:
            asked = time.monotonic()
            if self.call([minion], "test.ping", timeout=5).get(minion) is True:
                return True
            if time.monotonic() - asked < 1:
                # Refused at once (not connected yet): give the bus a moment
                # rather than spinning.
                event = self.listener.get_event(wait=1, no_block=False, full=True)
                if event:
                    self.watch_prepared(event["tag"], event["data"])
        return False

    def _running_update(self, minion, cancelled_gate):
        """The jid of this rollout's ``expressware.installed`` job still running on ``minion``
        (published by a lost driver), else None. A prepared job at ``cancelled_gate``
        (just cancelled: it ends without changing anything) does not count."""
        jobs = self.call([minion], "saltutil.running").get(minion)
        for job in jobs if isinstance(jobs, list) else []:
            arg = job.get("arg") or []
            kwarg = next((a for a in arg if isinstance(a, dict) and a.get("__kwarg__")), {})
            if (job.get("fun") == "state.single" and arg[:2] == ["expressware.installed", self.record["version"]]
                    and (not cancelled_gate or kwarg.get("gate") != cancelled_gate)):
                return job.get("jid")
        return None

    def _await(self, minion, jid, deadline, resumed=False):
        """Wait for the node's job and its active event.

        Returns ``(None, node_state)`` when both say success (``node_state``: what the
        node's own active event reported, None when it is to be looked at directly),
        else ``(error, None)``. Prepares the next node once this one is installing.
        ``resumed``: the job may be one a lost driver published, whose listener got its
        active event: once the job has succeeded, the node is looked at directly.
        """
        job_done, active_seen, restarted, evidence = False, False, False, None
        ret_tag = f"salt/job/{jid}/ret/{minion}"
        probe_tag = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state = self._node_state(minion)
                # Say so when the minion restarted meanwhile: its job (the update) was lost.
                return ((("the minion restarted during its update (its job was lost); " if restarted else "")
                         + f"not active within {self.record['options']['node_timeout']} s (a timeout is a failure): "
                         f"{state['state']}, installed {state['installed']}, running {state['running']}; "
                         + "; ".join(state["reasons"])), None)
            event = self.listener.get_event(wait=min(remaining, 5), full=True, auto_reconnect=True)
            if not event:
                continue
            tag, data = event["tag"], event["data"]
            self.watch_prepared(tag, data)
            if tag == ret_tag:
                error = _job_error(data)
                if error:
                    return error, None
                job_done = True
            elif data.get("id") == minion and tag == "expressware/node/phase":
                active_seen, evidence = False, None  # an earlier "active" (a beacon tick) predates this step
                phase = (data.get("data") or {}).get("phase")
                if phase in plan_lib.IN_FLIGHT:
                    plan_lib.mark_phase(self.record, minion, phase, time.time())
                    self.save_node(minion)
                    self.say(f"{minion}: {phase}", record=False)  # mark_phase logged it
                    self.fire(f"node/{minion}/phase", {"minion": minion, "phase": phase})
                if phase == plan_lib.INSTALLING:
                    # It is down for a while: the next node gets ready meanwhile.
                    self.prepare(plan_lib.upcoming(self.record, current=minion))
            elif data.get("id") == minion and tag == "expressware/node/active":
                active_seen = True
                reported = (data.get("data") or {}).get("node_state")
                evidence = reported if isinstance(reported, dict) and not restarted else None
            elif tag == f"salt/beacon/{minion}/expressware/active":
                active_seen, evidence = True, None
            elif tag == f"salt/beacon/{minion}/expressware/inactive":
                active_seen = False
            elif probe_tag is not None and tag == probe_tag:
                # The answer of the wait_active asked for after a restart (below),
                # in case its event was lost.
                if isinstance(data.get("return"), dict) and data["return"].get("active") is True:
                    active_seen, evidence = True, None
            elif tag == f"salt/minion/{minion}/start":
                # The minion restarted (a reboot, or salt-minion itself was
                # restarted): its job is lost, and so may be the active event it
                # was about to send (a salt-minion stopped while its job finishes
                # drops it; without this the runner waited out node_timeout and
                # recorded a failure for a node active on the target). Ask the node
                # again: wait_active answers, and fires expressware/node/active, as
                # soon as the node is active (at once if it already is). The
                # beacon's active event, where configured, counts as well.
                restarted = True
                evidence = None
                self.say(f"{minion}: minion restarted; asking it to report when the node is active")
                try:
                    probe = self.client.cmd_async([minion], "expressware.wait_active", tgt_type="list",
                                                  kwarg={"timeout": max(1, int(deadline - time.monotonic()))})
                except Exception:  # pylint: disable=broad-except
                    probe = None  # the beacon's event or the deadline decide
                if probe:
                    probe_tag = f"salt/job/{probe}/ret/{minion}"
            if active_seen and (job_done or restarted):
                return None, evidence
            if resumed and job_done:
                return None, None

    def _node_state(self, minion):
        try:
            state = self.call_one(minion, "expressware.node_state")
        except RuntimeError as exc:
            return {"state": "unknown", "active": False, "installed": None, "running": None, "reasons": [str(exc)]}
        if not isinstance(state, dict):
            return {"state": "unknown", "active": False, "installed": None, "running": None, "reasons": [str(state)]}
        return state

    def _failed(self, minion, error, state=None):
        state = state or self._node_state(minion)
        plan_lib.mark_failed(self.record, minion, error, time.time(), after=state.get("installed"))
        self.say(f"{minion} FAILED: {error}")
        self.say("halted: no further node is touched; the cluster's update lease stays taken. "
                 "Fix the node, then rolling.resume (or rolling.resume skip='[" + minion + "]')")
        self.fire(f"node/{minion}/failed", {"minion": minion, "error": error})
        self.fire("halted", {"reason": self.record["reason"]})
        return None


def _job_error(data):
    """The error of a finished state.single job, None when it succeeded."""
    ret = data.get("return")
    if isinstance(ret, dict) and ret and all(isinstance(v, dict) for v in ret.values()):
        failed = [v.get("comment", "") for v in ret.values() if v.get("result") is not True]
        return "; ".join(failed) or None
    return f"the state run did not complete: {ret}"
