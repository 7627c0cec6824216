"""The rolling runner's wiring to this master: its records (rollouts, leases), a driver wired to its Salt, its event
bus, and each runner function's work with them once its arguments are checked. Salt glue only, kept out of the
runner's public functions (``_runners/rolling.py``); the walk is the driver's.
"""

import contextlib
import functools
import importlib.util
import logging
import os
import secrets
import sys
import time

import salt.utils.event
from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)


def _sibling(name):
    """Another module of this directory: the same module object the loader modules' ``_shared()`` gives."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


store = _sibling("expressware_store")
saltio = _sibling("expressware_salt")
staging_lib = _sibling("expressware_staging")
driver_lib = _sibling("expressware_driver")
window_lib = _sibling("expressware_window")
rollback_lib = _sibling("expressware_rollback")
plan_lib = _sibling("expressware_rollout")
protocol = _sibling("expressware_protocol")
fleet_lib = _sibling("expressware_fleet")
fleet_run_lib = _sibling("expressware_fleet_run")
rollout_args = _sibling("expressware_rollout_args")
report_lib = _sibling("expressware_report")


def new_rollout_id():
    """A new rollout's id: when it started, and a random tail."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def refusals(func, *args):
    """``func(*args)``, a refusal of the driver as the runner's (``SaltInvocationError``)."""
    try:
        return func(*args)
    except driver_lib.RolloutRefused as exc:
        raise SaltInvocationError(str(exc)) from exc


class Master:
    """This master (its options ``opts``) as the rolling runner uses it."""

    def __init__(self, opts):
        self.opts = opts

    def rollouts(self):
        """The rollout records (the store both masters share when ``expressware:store`` is set)."""
        return store.rollout_store(self.opts)

    def leases(self):
        """The clusters' update leases (the store both masters share when ``expressware:store`` is set)."""
        return store.lease_store(self.opts)

    def find(self, rollout, cluster, required=True, skip=()):
        """The rollout named, else the latest (of ``cluster``) whose status is not in ``skip``."""
        try:
            return self.rollouts().find(rollout, cluster, required=required, skip=skip)
        except ValueError as exc:
            raise SaltInvocationError(str(exc)) from exc

    @contextlib.contextmanager
    def driver(self, args, progress, **extra):
        """A driver wired to this master's Salt (its adapter open while the driver is used) and records; ``extra``:
        the driver's further arguments (a fleet's ``builds`` and ``label``)."""
        # Its records say which master drives them, and its store holds each one's driver lock while it runs (the
        # other master's rolling.status/resume/abort ask that lock: expressware_store.driver_alive).
        rollouts = store.driver_rollout_store(self.opts)
        try:
            with saltio.SaltAdapter(self.opts, default_timeout=args.get("timeout", 60)) as salt_io:
                yield driver_lib.Driver(
                    salt_io,
                    rollouts,
                    self.leases(),
                    args,
                    staging_lib.Staging(salt_io, self.opts["cachedir"]),
                    progress=progress,
                    identity=rollouts.driver,
                    clock=window_lib.clock_from_env(),
                    resolve_members=functools.partial(saltio.cluster_members, self.opts),
                    **extra,
                )
        except store.DriverBusy as exc:
            raise SaltInvocationError(str(exc)) from exc
        finally:
            rollouts.close()

    def plan(self, args, given):
        """``rolling.plan`` (``args`` checked, ``given`` as given): one cluster's plan, or a fleet's (each cluster's
        and the waves); nothing touched."""
        fleet = self.fleet(args, given, progress=False)
        if fleet is not None:
            run, groups, waves = fleet
            return run.plan_report(groups, waves)
        with self.driver(args, progress=False) as driver:
            record, refused = refusals(driver.plan)
        if refused:
            return refused
        result = plan_lib.summary(record)
        result.update(status="planned", retcode=0, actions={m: n["action"] for m, n in record["nodes"].items()})
        if args["options"]["window"]:
            result["window"] = window_lib.first_start(args["options"], (window_lib.clock_from_env() or time.time)())
        return result

    def start(self, args, given):
        """``rolling.update``'s rollout (``args`` checked, ``given`` as given): one cluster's, or a fleet's."""
        fleet = self.fleet(args, given, progress=given["progress"])
        if fleet is not None:
            run, groups, waves = fleet
            return run.start("fleet-" + new_rollout_id(), groups, waves)
        rollout_id = new_rollout_id()
        with self.driver(args, progress=given["progress"]) as driver:
            return refusals(driver.start, rollout_id)

    def fire_refusal(self, given, result):
        """A refused ``rolling.update`` (``given``: its arguments), said on the bus as well: a rollout the reactor
        started has no terminal."""
        self.fire(
            protocol.ROLLING_REFUSED,
            protocol.refusal_event(
                given["cluster"] or "default",
                given["version"],
                result["comment"],
                problems=result.get("problems"),
                holder=result["lease"]["holder"] if "lease" in result else None,
            ),
        )

    def resume(self, rollout, cluster, skip, timeout, progress=True):
        """``rolling.resume`` (its checked arguments): a fleet's (named, or the latest rollout's without ``skip``),
        or one rollout continued by a new driver."""
        if fleet_lib.is_fleet_id(rollout):
            return self.fleet_resume(rollout, timeout, progress=progress)
        record = self.find(rollout, cluster)
        if record.get("fleet") and rollout is None and cluster is None and not skip:
            return self.fleet_resume(record["fleet"], timeout, progress=progress)  # the latest is a fleet's
        try:
            plan_lib.check_resumable(record)  # before anything connects to Salt
        except plan_lib.RolloutError as exc:
            raise SaltInvocationError(str(exc)) from exc
        args = dict(record.get("args") or {}, timeout=timeout)
        with self.driver(args, progress=progress) as driver:
            return refusals(driver.resume, record, skip or [], store.driver_alive(record))

    def report(self, rollout, cluster, path, fmt):
        """``rolling.report`` (its checked ``path`` and ``fmt``): the picture of the rollout named or the latest,
        written (by default under the master's cache directory)."""
        record = self.find(rollout, cluster)
        path = path or store.reports_path(self.opts["cachedir"], record["id"], fmt)
        try:
            report_lib.write(record, path, now=time.time(), fmt=fmt)
        except OSError as exc:
            raise SaltInvocationError(f"cannot write {path}: {exc}") from exc
        return {"rollout": record["id"], "status": record["status"], "path": path}

    def rollout_list(self, cluster, limit):
        """``rolling.list`` (its checked arguments): the rows of the latest ``limit`` rollouts (of ``cluster``)."""
        return report_lib.rollout_list(self.rollouts().records(cluster), now=time.time())[:limit]

    def fire(self, tag, data):
        """Fire on the master bus outside a rollout's driver (a courtesy to listeners: never fails the call)."""
        try:
            with salt.utils.event.get_master_event(self.opts, self.opts["sock_dir"], listen=False) as event:
                event.fire_event(data, tag)
        except Exception:  # pylint: disable=broad-except
            log.warning("could not fire %s", tag, exc_info=True)

    def rollback(self, rollout, sia, node_timeout, timeout, test=False, progress=True):
        """``rolling.rollback`` of the rollout ``rollout`` (its checked arguments): the plan (``test``) or the
        rollback run, a rollout of its own linked to the original (``expressware_rollback``)."""
        original = self.find(rollout, None)
        try:
            args = rollback_lib.rollback_args(original, store.driver_alive(original), sia, node_timeout, timeout)
        except rollback_lib.RollbackError as exc:
            raise SaltInvocationError(str(exc)) from exc
        if test:
            with self.driver(args, progress=False) as driver:
                record, refused = refusals(driver.plan)
            if refused:
                return dict(refused, rollback_of=original["id"])
            result = rollback_lib.plan_view(original, args)
            result.update(status="planned", retcode=0, actions={m: n["action"] for m, n in record["nodes"].items()})
            return result

        def link(record):
            # Both ways, before any node is touched: the original cannot be resumed or rolled back again.
            original_now = self.rollouts().load(original["id"])
            rollback_lib.link(original_now, record["id"], time.time())
            self.rollouts().save(original_now)

        with self.driver(args, progress=progress) as driver:
            result = refusals(driver.start, new_rollout_id(), driver_lib.holder(original["id"]), link)
        return dict(result, rollback_of=original["id"])

    def abort_named(self, rollout, cluster):
        """``rolling.abort`` of the rollout named (a fleet: every cluster), else of the latest (of ``cluster``)."""
        if fleet_lib.is_fleet_id(rollout):
            return self.fleet_abort(rollout)
        return self.abort(self.find(rollout, cluster))

    def abort(self, record):
        """``rolling.abort`` of ``record``: a running rollout is asked to stop after its current node; a stopped one
        is aborted here, its lease released."""
        rollouts = self.rollouts()
        if record["status"] in (plan_lib.DONE, plan_lib.REFUSED):
            raise SaltInvocationError(f"rollout {record['id']} is already {record['status']}")
        if record["status"] in (plan_lib.RUNNING, plan_lib.WAITING, plan_lib.PREFLIGHT) and store.driver_alive(record):
            rollouts.request_abort(record["id"])
            return {
                "rollout": record["id"],
                "status": "aborting",
                "comment": f"the driver (pid {record['driver']['pid']}) stops after the current node",
            }
        plan_lib.abort(record, time.time())
        rollouts.save(record)
        self.leases().release(record["cluster"], holder=driver_lib.holder(record["id"]))
        self.fire(protocol.rolling_tag(record["id"], "aborted"), {"reason": record["reason"]})
        return plan_lib.summary(record)

    def status(self, rollout, cluster):
        """``rolling.status``: the rollout named or the latest (refused ones left out), with its lease."""
        if fleet_lib.is_fleet_id(rollout):
            return self.fleet_status(rollout)
        record = self.find(rollout, cluster, required=False, skip=(plan_lib.REFUSED,))
        if record is None:
            return {"rollout": None, "comment": "no rollout recorded", "leases": self.leases().all()}
        if record.get("fleet") and rollout is None and cluster is None:
            return self.fleet_status(record["fleet"])  # the latest rollout is a fleet's: the fleet
        options, goes_on_at = record["options"], None
        if record["status"] == plan_lib.WAITING and record.get("resume_at"):
            goes_on_at = window_lib.parse(options["window"], options.get("window_tz")).format(record["resume_at"])
        lease = self.leases().get(record["cluster"])
        return plan_lib.status_report(record, lease, store.driver_alive(record), goes_on_at)

    # -- fleets: a target that spans clusters (expressware_fleet, expressware_fleet_run) ------------------------

    def fleet(self, args, given, progress=True):
        """``(run, groups, waves)`` for a target that spans clusters (or with ``waves``): the targeted minions by
        their ``expressware:cluster``. None for one cluster, whose name ``args`` then carries (unless given)."""
        args["given_window"] = {"window": given.get("window"), "window_tz": given.get("window_tz")}
        window = self._window(args)
        try:
            groups = fleet_lib.group_by_cluster(
                saltio.minion_clusters(self.opts, args["tgt"], args["tgt_type"]), args["cluster"]
            )
            if len(groups) <= 1 and not args["waves"]:
                del args["given_window"]
                if groups and given.get("cluster") is None:
                    (args["cluster"],) = groups  # the cluster its nodes say they are in
                    args["options"]["window"], args["options"]["window_tz"] = window(args["cluster"])
                return None
            for name, value in (
                ("frontend", args["options"]["frontend"]),
                ("cluster_members", args["cluster_members"]),
            ):
                if value is not None:
                    raise fleet_lib.FleetError(
                        f"{name} is for one cluster, and the target spans {', '.join(sorted(groups))}: "
                        "target one cluster (members of a fleet's clusters come from expressware:cluster)"
                    )
            targeted = {m for nodes in groups.values() for m in nodes}
            stray = [m for m in args["order"] or [] if m not in targeted]
            if stray:
                raise fleet_lib.FleetError(f"order names minions that are not targeted: {', '.join(stray)}")
            waves = [w if isinstance(w, list) else saltio.match_minions(self.opts, w) for w in args["waves"] or []]
            waves = fleet_lib.plan_waves(groups, waves or None, args["options"]["canary"])
        except fleet_lib.FleetError as exc:
            raise SaltInvocationError(str(exc)) from exc
        return fleet_run_lib.FleetRun(self, args, window, new_rollout_id, progress=progress), groups, waves

    def fleets(self):
        return fleet_run_lib.FleetStore(self.rollouts())

    def find_fleet(self, fleet_id):
        try:
            return self.fleets().load(fleet_id)
        except ValueError as exc:
            raise SaltInvocationError(str(exc)) from exc

    def fleet_status(self, fleet_id):
        record = self.find_fleet(fleet_id)
        result = fleet_run_lib.fleet_report(record, self.rollouts())
        result["driver"] = dict(record.get("driver") or {}, alive=store.driver_alive(record))
        return result

    def fleet_abort(self, fleet_id):
        """``rolling.abort`` of a fleet: a running one stops every cluster after its node in flight; a stopped one
        has each of its stopped rollouts aborted here (their leases released)."""
        record = self.find_fleet(fleet_id)
        if record["status"] == fleet_lib.DONE:
            raise SaltInvocationError(f"fleet {fleet_id} is already done")
        if record["status"] == fleet_lib.RUNNING and store.driver_alive(record):
            self.rollouts().request_abort(fleet_id)
            return {"fleet": fleet_id, "status": "aborting", "comment": "every cluster stops after its node in flight"}
        for entry in record["clusters"].values():
            if entry["rollout"] and entry["status"] not in (plan_lib.DONE, plan_lib.REFUSED, plan_lib.ABORTED):
                with contextlib.suppress(SaltInvocationError):  # done or aborted on its own meanwhile
                    self.abort(self.find(entry["rollout"], None))
                entry["status"] = self.find(entry["rollout"], None)["status"]
        fleet_lib.finish(record, time.time(), aborted=True)
        self.fleets().save(record)
        return self.fleet_status(fleet_id)

    def fleet_resume(self, fleet_id, timeout, progress=True):
        record = self.find_fleet(fleet_id)
        if record["status"] == fleet_lib.RUNNING and store.driver_alive(record):
            raise SaltInvocationError(f"fleet {fleet_id} is running (driver pid {record['driver']['pid']})")
        try:
            fleet_lib.check_resumable(record)
        except fleet_lib.FleetError as exc:
            raise SaltInvocationError(str(exc)) from exc
        args = dict(record["args"], timeout=timeout)
        run = fleet_run_lib.FleetRun(self, args, self._window(args), new_rollout_id, progress=progress)
        try:
            return run.resume(record)
        except store.DriverBusy as exc:
            raise SaltInvocationError(str(exc)) from exc

    def _window(self, args):
        """A fleet's cluster's window and zone: the operator's, else the master configuration's for the cluster."""
        return functools.partial(rollout_args.window_args, args["given_window"], config=self.opts.get("expressware"))
