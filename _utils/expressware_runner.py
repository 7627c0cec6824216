"""The rolling runner's wiring to this master: its records (rollouts, leases), a driver wired to its Salt, its event
bus. Salt glue only, kept out of the runner's public functions (``_runners/rolling.py``); the walk is the driver's.
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
    def driver(self, args, progress):
        """A driver wired to this master's Salt (its adapter open while the driver is used) and records."""
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
                    file_recv=bool(self.opts.get("file_recv")),
                    progress=progress,
                    identity=rollouts.driver,
                    clock=window_lib.clock_from_env(),
                    resolve_members=functools.partial(saltio.cluster_members, self.opts),
                )
        except store.DriverBusy as exc:
            raise SaltInvocationError(str(exc)) from exc
        finally:
            rollouts.close()

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
        record = self.find(rollout, cluster, required=False, skip=(plan_lib.REFUSED,))
        if record is None:
            return {"rollout": None, "comment": "no rollout recorded", "leases": self.leases().all()}
        options, goes_on_at = record["options"], None
        if record["status"] == plan_lib.WAITING and record.get("resume_at"):
            goes_on_at = window_lib.parse(options["window"], options.get("window_tz")).format(record["resume_at"])
        lease = self.leases().get(record["cluster"])
        return plan_lib.status_report(record, lease, store.driver_alive(record), goes_on_at)
