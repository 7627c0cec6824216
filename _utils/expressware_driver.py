"""The walk of a rolling update: pre-flight, then the rollout core's next action, one node at a time, one way to halt.

Its I/O is injected: Salt through an adapter (``expressware_salt.SaltAdapter`` in the runner, a simulated cluster
in the tests), the records through ``RolloutStore``/``LeaseStore``, the clock through the adapter (``time``,
``monotonic``; the maintenance window's may be given alone: ``clock``). What to do next is the rollout core's
(``expressware_rollout``), what a node's events mean is ``expressware_watch``'s, the builds and staging are
``expressware_staging``'s, the prepared jobs ``expressware_gates``'s. The driver's own parts beside the walk are
mixins, one module each: the pre-flight (``expressware_driver_preflight``), the cluster health gate
(``expressware_driver_health``), the waits that say so: window and long wait (``expressware_driver_waits``), one
node's update: released or published, its events watched until it is back (``expressware_driver_node``). Every
step is saved before the next one starts; a driver that dies at any point leaves a record that ``resume``
continues.
"""

import importlib.util
import os
import socket
import sys
import time


def _sibling(name):
    """Another module of this directory: the same module object the loader modules' ``_shared()`` gives."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


protocol = _sibling("expressware_protocol")
plan_lib = _sibling("expressware_rollout")
saltio = _sibling("expressware_salt")
staging_lib = _sibling("expressware_staging")
gates_lib = _sibling("expressware_gates")
health_gate = _sibling("expressware_driver_health")
preflight_lib = _sibling("expressware_driver_preflight")
waits_lib = _sibling("expressware_driver_waits")
node_lib = _sibling("expressware_driver_node")

LostMaster = saltio.LostMaster


class RolloutRefused(ValueError):
    """A request the rollout cannot take (the runner turns it into a refusal)."""


def holder(rollout_id):
    """Who holds a cluster's lease for rollout ``rollout_id``."""
    return f"rolling:{rollout_id}"


class Driver(preflight_lib.Preflight, health_gate.HealthGate, waits_lib.Waits, node_lib.NodeUpdate):
    """One rollout's driver. ``salt``: the adapter; ``rollouts``/``leases``: the master's stores; ``args``: the
    checked arguments; ``staging``: an ``expressware_staging.Staging``."""

    def __init__(
        self,
        salt,
        rollouts,
        leases,
        args,
        staging,
        progress=False,
        out=None,
        identity=None,
        clock=None,
        resolve_members=None,
        builds=None,
        label=None,
        on_halt=None,
    ):
        self.salt = health_gate.Watched(salt, self.health_event)
        self.rollouts, self.leases, self.args = rollouts, leases, args
        # The wall clock the maintenance window is read with (a test may move it).
        self.clock = clock or salt.time
        self.staging, self.progress = staging, progress
        self.out = out if out is not None else sys.stderr
        self.identity = identity or {"pid": os.getpid(), "host": socket.gethostname()}
        self.record = None
        self.lease_from = None  # the lease's holder before this rollout took it over (a rollback)
        self.frontend_fact = None
        self.gates = gates_lib.Gates(self.salt, self, args["timeout"])
        # The cluster health gate: the live view of every member, the looks asked (jid: (when, whom)), and how the
        # runner finds the members the operator names (``cluster_members``: a target; from the master's cache).
        self.view = None
        self.health_asks = {}
        self.done_at = None  # when the evidence that the node in flight is back was fired
        self.resolve_members = resolve_members or (lambda expr, cluster: list(expr) if isinstance(expr, list) else [])
        # In a fleet: the builds the clusters share (``expressware_fleet_run.SharedBuilds``), the cluster's name, and
        # who is told at once of a halt (with halt=fleet the other clusters stop after their node in flight).
        self.builds, self.label, self.on_halt = builds, label, on_halt

    # -- output and records ----------------------------------------------------

    def say(self, message, record=True):
        """Progress on standard error, and (``record``) in the rollout's log."""
        if self.record is not None and record:
            plan_lib.log(self.record, self.salt.time(), message)
        if self.progress:
            label = f" {self.label}" if self.label else ""  # a fleet's: the cluster
            prefix = f"[rolling {self.record['id']}{label}] " if self.record else f"[rolling{label}] "
            print(time.strftime("%H:%M:%S ") + prefix + message, file=self.out, flush=True)

    def fire(self, suffix, data):
        self.salt.fire(protocol.rolling_tag(self.record["id"], suffix), dict(data, rollout=self.record["id"]))

    def save(self):
        self.record["updated"] = self.salt.time()
        self.rollouts.save(self.record)

    def save_node(self, minion):
        """Record a step that changed one node (cheap, whatever the cluster size)."""
        self.record["updated"] = self.salt.time()
        self.rollouts.save_node(self.record, minion)

    def save_group(self, key):
        """Record a step that changed one group (built, staged: with its nodes), as cheaply as a node's."""
        self.record["updated"] = self.salt.time()
        self.rollouts.save_changes(self.record, nodes=tuple(self.record["groups"][key]["nodes"]), groups=(key,))

    def halt(self, reason=None):
        """The one way to stop on a failure: recorded (unless the core recorded it already), said, announced."""
        if reason is not None:
            plan_lib.halt(self.record, reason, self.salt.time())
        self.say(f"halted: {self.record['reason']}")
        self.announce_halt()

    def announce_halt(self):
        """On the bus; and at once to a fleet (with halt=fleet its other clusters stop after their node in flight)."""
        self.fire("halted", {"reason": self.record["reason"]})
        if self.on_halt is not None:
            self.on_halt()

    def _driver_entry(self):
        return dict(self.identity, since=self.salt.time())

    # -- minion calls --------------------------------------------------------

    def call_one(self, minion, fun, arg=(), kwarg=None, timeout=None):
        timeout = timeout or self.args["timeout"]
        ret = self.salt.call([minion], fun, arg, kwarg, timeout=timeout)
        if ret.get(minion, False) is False:
            raise RuntimeError(f"{minion} did not answer {fun} within {timeout} s")
        return ret[minion]

    def node_state(self, minion):
        try:
            state = self.call_one(minion, "expressware.node_state")
        except RuntimeError as exc:
            return {"state": "unknown", "active": False, "installed": None, "running": None, "reasons": [str(exc)]}
        if not isinstance(state, dict):
            return {"state": "unknown", "active": False, "installed": None, "running": None, "reasons": [str(state)]}
        return state

    def plan(self, rollout_id="plan"):
        """The record :meth:`start` would make, touching nothing; a problems report when the pre-flight refuses."""
        facts, problems = self.preflight()
        if problems:
            return None, preflight_lib.problems_report(problems)
        return self._new_record(rollout_id, facts), None

    def _new_record(self, rollout_id, facts):
        args = self.args
        try:
            return plan_lib.new_record(
                rollout_id,
                args["cluster"],
                args["version"],
                args["sia"],
                facts,
                args["options"],
                self.salt.time(),
                order=args["order"],
                sort=args["sort"],
                frontend_fact=self.frontend_fact,
            )
        except plan_lib.RolloutError as exc:
            raise RolloutRefused(str(exc)) from exc

    # -- the rollout ---------------------------------------------------------

    def start(self, rollout_id, take_lease_from=None, on_planned=None):
        """Run a new rollout. ``take_lease_from``: the holder whose lease this rollout takes over (a rollback of a
        halted rollout; handed back if the pre-flight refuses); ``on_planned(record)``: called once it is planned,
        before any node is touched (the rollback links the original)."""
        args = self.args
        purpose = f"rolling update to {args['version']}"
        if take_lease_from:
            lease = self.leases.take_over(args["cluster"], holder(rollout_id), take_lease_from, purpose=purpose)
        else:
            lease = self.leases.acquire(args["cluster"], holder(rollout_id), purpose=purpose)
        self.lease_from = lease.get("taken_from")
        if not lease["granted"]:
            reason = (
                f"cluster {args['cluster']} is busy: its update lease is held by {lease['holder']} for {lease['age']} s"
            )
            self.say(f"refused: {reason}")
            return {"status": "refused", "comment": reason, "lease": lease, "retcode": 1}
        # Who holds the lease, and why, is on record before anything can hang.
        self.record = plan_lib.preflight_record(
            rollout_id, args["cluster"], args["version"], args["sia"], args["options"], self.salt.time()
        )
        self.record["driver"] = self._driver_entry()
        self.record["args"] = {k: v for k, v in args.items() if k != "timeout"}
        for link in ("rollback_of", "fleet"):  # a rollback's original; the fleet this cluster's rollout is part of
            if args.get(link):
                self.record[link] = args[link]
        self.save()
        try:
            facts, problems = self.preflight()
            if problems:
                return self._refuse(preflight_lib.problems_report(problems), problems)
            planned = self._new_record(rollout_id, facts)
        except LostMaster as exc:
            return self._refuse({"status": "refused", "comment": str(exc), "retcode": 1})
        except RolloutRefused as exc:
            self._refuse({"status": "refused", "comment": str(exc), "retcode": 1})
            raise
        planned.update(created=self.record["created"], driver=self.record["driver"], args=self.record["args"])
        for link in ("rollback_of", "fleet"):
            if args.get(link):
                planned[link] = args[link]
        planned["log"] = self.record["log"] + planned["log"]
        self.record = planned
        if on_planned is not None:
            on_planned(planned)
        self.say(
            f"rollout {rollout_id}: {len(self.record['order'])} node(s) in order "
            f"{', '.join(self.record['order']) or '(none)'}"
        )
        self.fire("start", {"version": args["version"], "order": self.record["order"], "cluster": args["cluster"]})
        return self.run()

    def _refuse(self, report, problems=None):
        """The pre-flight refused: the record says so, the lease goes back."""
        plan_lib.refuse(self.record, report["comment"], self.salt.time(), problems=report.get("problems"))
        self.save()
        if self.lease_from:  # taken over: back to the rollout it was taken from
            self.leases.take_over(self.args["cluster"], self.lease_from, holder(self.record["id"]))
        else:
            self.leases.release(self.args["cluster"], holder=holder(self.record["id"]))
        return report

    def resume(self, record, skip, alive):
        if record["status"] in (plan_lib.RUNNING, plan_lib.WAITING, plan_lib.PREFLIGHT) and alive:
            raise RolloutRefused(f"rollout {record['id']} is running (driver pid {record['driver']['pid']})")
        try:
            plan_lib.check_resumable(record)
        except plan_lib.RolloutError as exc:
            raise RolloutRefused(str(exc)) from exc
        lease = self.leases.acquire(
            record["cluster"], holder(record["id"]), purpose=f"rolling update to {record['version']}"
        )
        if not lease["granted"]:
            raise RolloutRefused(f"cluster {record['cluster']}'s update lease is held by {lease['holder']}")
        self.record = record
        try:
            plan_lib.resume(record, self.salt.time(), skip=skip)
        except plan_lib.RolloutError as exc:
            raise RolloutRefused(str(exc)) from exc
        self.rollouts.clear_abort(record["id"])
        self.say(f"resuming; in flight: {', '.join(plan_lib.in_flight(record)) or 'none'}")
        self.gates.cancel_open_gates()
        self.resume_view(skip)
        return self.run()

    def run(self):
        record = self.record
        record["driver"] = self._driver_entry()
        self.save()
        try:
            while self.step():
                pass
        except LostMaster as exc:
            self.say(f"interrupted: {exc}; the record is kept, run rolling.resume when the master is back")
            self.save()
            result = plan_lib.summary(record)
            result.update(status="interrupted", comment=str(exc), retcode=2)
            return result
        finally:
            try:
                self.gates.cancel_prepared(f"the rollout is {record['status']}")
            except LostMaster:
                pass  # the next driver (rolling.resume) cancels it: its gate is in the record
        self.save()
        result = plan_lib.summary(record)
        result["retcode"] = 0 if record["status"] in (plan_lib.DONE, plan_lib.PAUSED) else 1
        self.say(f"{record['status']}" + (f": {record['reason']}" if record["reason"] else ""))
        return result

    def step(self):
        """One action of the walk, saved; False when there is nothing more to do."""
        record = self.record
        if self.rollouts.abort_requested(record["id"]):
            plan_lib.abort(record, self.salt.time())
            self.rollouts.clear_abort(record["id"])
            self.leases.release(record["cluster"], holder=holder(record["id"]))
            self.say("aborted by the operator; the cluster's update lease is released")
            self.fire("aborted", {"reason": record["reason"]})
            return False
        action = plan_lib.next_action(record)
        if action is None:
            return False
        if action[0] in ("update", "frontend") and self.await_window(action[1]):
            return True  # waited for the maintenance window (or halted): the next action is looked at again
        if action[0] in ("build", "stage"):
            # The first node to update gets ready while the RPMs are built and staged.
            self.gates.prepare(plan_lib.upcoming(record), self.gate_kwarg())
        getattr(self, "do_" + action[0])(*action[1:])
        if action[0] == "update":
            self.save_node(action[1])
        elif action[0] in ("build", "stage"):
            self.save_group(action[1])
        else:
            self.save()
        return True

    # -- actions ---------------------------------------------------------------

    def do_build(self, key):
        if self.builds is not None:
            return self.builds.build(self, key)
        group = self.record["groups"][key]
        builder = group["builder"]
        self.say(f"building RPMs for {key} on {builder} (it stays up)")
        workdir = self.record["nodes"][builder]["workdir"]
        try:
            source, rpms = self.staging.build(
                builder, self.record["sia"], workdir, self.record["options"]["node_timeout"]
            )
        except staging_lib.StagingError as exc:
            return self.halt(f"build for {key} failed: {exc}")
        group["source"], group["builder_workdir"] = source, workdir
        plan_lib.mark_built(self.record, key, rpms, self.salt.time())
        self.fire(f"build/{key}", {"builder": builder, "rpms": rpms})
        return None

    def do_stage(self, key, background=False):
        """Stage the group's RPMs. ``background`` (while a node is in flight): a failure is not final yet, the
        driver tries again before the next node (the builder may be the node in flight, rebooting)."""
        group = self.record["groups"][key]
        receivers = [m for m in group["nodes"] if m != group["builder"]]
        self.say(f"staging {len(group['rpms'])} RPM(s) of {key} on {len(receivers)} node(s)")
        try:
            self.staging.stage(group, self.record["options"]["node_timeout"])
        except staging_lib.StagingError as exc:
            if background:
                self.say(f"staging of {key} not done yet ({exc}); again before the next node")
            else:
                self.halt(f"staging for {key} failed: {exc}")
            return False
        plan_lib.mark_staged(self.record, key, self.salt.time())
        return True

    def do_pause(self, reason):
        plan_lib.pause(self.record, reason, self.salt.time())
        self.say(f"paused: {reason}")
        self.fire("paused", {"reason": reason})

    def do_finish(self):
        plan_lib.finish(self.record, self.salt.time())
        self.leases.release(self.record["cluster"], holder=holder(self.record["id"]))
        self.fire("finish", {"summary": plan_lib.summary(self.record)["counts"]})

    def do_frontend(self, minion):
        record = self.record
        try:
            # Looked at again: after a resume the installation may have happened already.
            installed = self.call_one(minion, "expressware.frontend_version")
            if installed == record["version"] and not record["options"]["enforce"]:
                self.say(f"the frontend {minion} is on {installed} already")
                plan_lib.mark_frontend(record, True, self.salt.time(), version=installed, note="already on the target")
                return
            self.say(f"updating the frontend {minion} (--install-frontend)")
            ret = self.call_one(
                minion,
                "sia.install_frontend",
                [record["sia"]],
                {"enforce": record["options"]["enforce"]},
                timeout=record["options"]["node_timeout"],
            )
            if not isinstance(ret, dict):
                raise RuntimeError(str(ret))
            installed = self.call_one(minion, "expressware.frontend_version")
            if installed != record["version"]:
                raise RuntimeError(f"the installer succeeded, but the frontend packages are on {installed}")
        except RuntimeError as exc:
            plan_lib.mark_frontend(record, False, self.salt.time(), error=str(exc))
            self.halt()
            return
        plan_lib.mark_frontend(record, True, self.salt.time(), version=installed)
        self.say(f"the frontend {minion} is on {installed}")

    def state_kwarg(self):
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
        if opts.get("downgrade_from"):  # a rollback: the downgrade from exactly this version
            kwarg["downgrade_from"] = opts["downgrade_from"]
        return kwarg

    def gate_kwarg(self):
        # Bounded even if the runner is lost: the builds and the current node first.
        return dict(self.state_kwarg(), gate_timeout=2 * self.record["options"]["node_timeout"] + self.args["timeout"])
