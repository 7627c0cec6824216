"""The rolling runner's side of a fleet: one ordinary rollout per cluster, each driven by its own driver in a thread
of the ``salt-run`` (its own Salt adapter: client and event listener), up to ``parallel`` clusters at once; one
build per group of (arch, OS, kernel) for the whole fleet; the fleet's record beside the rollouts' records.

What may start, what a halt stops and what the record says are ``expressware_fleet``'s (plain Python); this module
only starts threads, waits for them, and saves.
"""

import copy
import functools
import importlib.util
import logging
import os
import queue
import sys
import threading
import time

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


fleet_lib = _sibling("expressware_fleet")
plan_lib = _sibling("expressware_rollout")
store = _sibling("expressware_store")
staging_lib = _sibling("expressware_staging")
protocol = _sibling("expressware_protocol")

# The rollout core loads the plan's functions lazily (``expressware_rollout.__getattr__``): loaded here, in one thread,
# before the clusters' drivers run in many. A thread that finds a module another thread is still executing (it is in
# sys.modules before its body ran) does not find its names: seen as "has no attribute 'preflight_record'".
for _name in plan_lib.PLAN_FUNCTIONS:
    getattr(plan_lib, _name)

#: Seconds between two looks at an abort request while the clusters' drivers run.
POLL = 1.0


class FleetStore:
    """Fleet records (``fleet-<id>.json``) in a ``fleets`` directory beside the rollout records ``rollouts``."""

    def __init__(self, rollouts):
        self.directory = os.path.join(os.path.dirname(rollouts.directory.rstrip(os.sep)), "fleets")

    def path(self, fleet_id):
        return os.path.join(self.directory, store.check_name(fleet_id, "fleet id") + ".json")

    def save(self, record):
        store.write_json(self.path(record["id"]), record)

    def load(self, fleet_id):
        record = store.read_json(self.path(fleet_id))
        if record is None:
            raise ValueError(f"no fleet {fleet_id!r} (see salt-run rolling.list)")
        return record


class SharedBuilds:
    """One build per group key for the whole fleet: the first cluster that needs it builds on its builder and
    pushes the RPMs to the master at once; the others wait for that and send them to their own builder, which is
    then like a builder that built them (the rest of each cluster is staged from the master as usual)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries = {}

    def build(self, driver, key):
        with self.lock:
            entry = self.entries.get(key)
            first = entry is None
            if first:
                entry = self.entries[key] = {
                    "done": threading.Event(),
                    "error": None,
                    "cluster": driver.args["cluster"],
                }
        record = driver.record
        group, timeout = record["groups"][key], record["options"]["node_timeout"]
        builder = group["builder"]
        workdir = record["nodes"][builder]["workdir"]
        if first:
            driver.say(f"building RPMs for {key} on {builder} for the whole fleet (it stays up)")
            try:
                source, rpms = driver.staging.build(builder, record["sia"], workdir, timeout)
                group["source"], group["builder_workdir"] = source, workdir
                driver.staging.push(dict(group, rpms=rpms), timeout)  # the other clusters stage from the master
            except staging_lib.StagingError as exc:
                entry["error"] = str(exc)
                entry["done"].set()
                return driver.halt(f"build for {key} failed: {exc}")
            entry.update(source=source, rpms=rpms, builder=builder)
            entry["done"].set()
        else:
            driver.say(f"RPMs for {key}: built once for the fleet (cluster {entry['cluster']}); waiting for them")
            if not entry["done"].wait(timeout):
                return driver.halt(f"the fleet's build for {key} (cluster {entry['cluster']}) took over {timeout} s")
            if entry["error"]:
                return driver.halt(
                    f"the fleet's build for {key} failed in cluster {entry['cluster']}: {entry['error']}"
                )
            source, rpms = entry["source"], entry["rpms"]
            try:
                driver.staging.send([builder], source, rpms)
            except staging_lib.StagingError as exc:
                return driver.halt(f"the fleet's RPMs of {key} did not reach {builder}: {exc}")
            group["source"], group["builder_workdir"] = source, workdir
        plan_lib.mark_built(record, key, rpms, driver.salt.time())
        driver.fire(f"build/{key}", {"builder": builder, "rpms": rpms, "built_in": entry["cluster"]})
        return None


def cluster_args(args, cluster, nodes, window):
    """The arguments of one cluster's rollout in a fleet: its nodes, its name, its window (``window(cluster)``:
    the operator's, else the cluster's default); the fleet's canary is the fleet's, not each cluster's."""
    given = copy.deepcopy(args)
    for key in ("parallel", "halt", "waves", "given_window"):
        given.pop(key, None)
    given.update(cluster=cluster, tgt=list(nodes), tgt_type="list", cluster_members=None)
    given["order"] = [m for m in args["order"] or [] if m in nodes] or None
    given["options"]["canary"] = 0
    given["options"]["window"], given["options"]["window_tz"] = window(cluster)
    return given


class FleetRun:
    """A fleet's walk on ``master`` (``expressware_runner.Master``): ``args`` are ``rolling.update``'s, checked;
    ``window(cluster)`` gives a cluster's window and zone; ``new_id()`` a new rollout's id."""

    def __init__(self, master, args, window, new_id, progress=True, out=None):
        self.master, self.args, self.window, self.progress = master, args, window, progress
        self.new_id = new_id  # a new rollout's id
        self.out = out if out is not None else sys.stderr
        self.rollouts = master.rollouts()
        self.fleets = FleetStore(self.rollouts)
        self.builds = SharedBuilds()
        self.ended = queue.Queue()
        self.threads = {}
        self.record = None
        self.lock = None  # the fleet's driver lock (expressware_store.hold_driver_lock) while it runs

    def say(self, message, record=True):
        """Progress on standard error, and (``record``: only from the fleet's own thread) in the fleet's log."""
        if self.record is not None and record:
            fleet_lib.log(self.record, time.time(), message)
        if self.progress:
            print(time.strftime("%H:%M:%S ") + f"[fleet {self.record['id']}] {message}", file=self.out, flush=True)

    def save(self):
        self.record["updated"] = time.time()
        self.fleets.save(self.record)

    def fire(self, suffix, data):
        self.master.fire(protocol.rolling_tag(self.record["id"], suffix), dict(data, fleet=self.record["id"]))

    # -- plan, start, resume -----------------------------------------------------

    def plan(self, groups, waves):
        """Every cluster's plan (its pre-flight, in parallel): ``{cluster: (record, refused)}``."""
        plans, threads = {}, []

        def one(cluster):
            args = cluster_args(self.args, cluster, groups[cluster], self.window)
            try:
                with self.master.driver(args, progress=False) as driver:
                    plans[cluster] = driver.plan()
            except Exception as exc:  # pylint: disable=broad-except  # a refusal of one cluster, said for it
                plans[cluster] = (None, {"status": "refused", "comment": str(exc), "retcode": 1})

        for cluster in [c for wave in waves for c in wave]:
            threads.append(threading.Thread(target=one, args=(cluster,), name=f"plan-{cluster}", daemon=True))
            threads[-1].start()
        for thread in threads:
            thread.join()
        return plans

    def plan_report(self, groups, waves):
        """``rolling.plan`` of a fleet: each cluster's plan, the waves; refused when any cluster's pre-flight is."""
        clusters = {}
        for cluster, (record, refused) in self.plan(groups, waves).items():
            if refused:
                clusters[cluster] = refused
            else:
                clusters[cluster] = dict(plan_lib.summary(record), status="planned")
                clusters[cluster]["actions"] = {m: n["action"] for m, n in record["nodes"].items()}
        refused = sorted(c for c, plan in clusters.items() if plan["status"] != "planned")
        return {
            "status": "refused" if refused else "planned",
            "comment": f"pre-flight refused in {', '.join(refused)}; nothing was touched" if refused else None,
            "waves": waves,
            "parallel": self.args["parallel"],
            "halt": self.args["halt"],
            "clusters": clusters,
            "retcode": 1 if refused else 0,
        }

    def start(self, fleet_id, groups, waves):
        options = {key: self.args.get(key) for key in ("parallel", "halt")}
        options.update(canary=self.args["options"]["canary"], waves=self.args.get("waves"))
        self.record = fleet_lib.new_fleet(fleet_id, self.args["version"], groups, waves, options, time.time())
        self.record["args"] = {k: v for k, v in self.args.items() if k != "timeout"}
        self._take_driver()
        self.save()
        self.say(
            f"{len(groups)} cluster(s) ({', '.join(sorted(groups))}), {sum(map(len, groups.values()))} node(s), "
            f"{len(waves)} wave(s), up to {options['parallel'] or 'all'} at once, a halt stops the {options['halt']}"
        )
        self.fire("start", {"version": self.args["version"], "clusters": sorted(groups), "waves": waves})
        return self.run()

    def resume(self, record):
        self.record = record
        self._take_driver()  # before anything changes: a resume on the other master at once is refused
        again = fleet_lib.resume(record, time.time())
        self.rollouts.clear_abort(record["id"])
        resumed = {}
        for cluster in again:
            rollout = self.rollouts.load(record["clusters"][cluster]["rollout"])
            if rollout["status"] == plan_lib.DONE:
                fleet_lib.mark_ended(record, cluster, plan_lib.DONE, None, time.time())
                continue
            fleet_lib.mark_progress(record, cluster, "running")
            resumed[cluster] = rollout
        self.save()  # once: which rollouts go on is on record before any of them does
        for cluster, rollout in resumed.items():
            self._launch(cluster, rollout)
        return self.run()

    def _take_driver(self):
        """This process drives the fleet: its lock (``driver_alive`` on either master reads it) and its identity."""
        self.lock = store.hold_driver_lock(self.fleets.directory, self.record["id"])
        identity = store.driver_identity(getattr(self.master, "opts", {}), self.fleets.directory)
        self.record["driver"] = dict(identity, since=time.time())

    # -- the walk -------------------------------------------------------------------

    def _start_clusters(self, clusters):
        """Start these clusters' rollouts: their ids on record first (one save for them all), then the drivers."""
        for cluster in clusters:
            fleet_lib.mark_started(self.record, cluster, self.new_id(), time.time())
        if clusters:
            self.save()
        for cluster in clusters:
            self._launch(cluster)

    def _launch(self, cluster, resumed=None):
        entry = self.record["clusters"][cluster]
        args = cluster_args(self.args, cluster, entry["nodes"], self.window)
        args["fleet"] = self.record["id"]
        thread = threading.Thread(
            target=self._walk, args=(cluster, args, entry["rollout"], resumed), name=f"cluster-{cluster}", daemon=True
        )
        self.threads[cluster] = thread
        thread.start()

    def _walk(self, cluster, args, rollout_id, resumed):
        """One cluster's rollout, to its end; what it returned goes to the fleet's loop."""
        try:
            on_halt = functools.partial(self._halted, cluster)
            with self.master.driver(
                args, progress=self.progress, builds=self.builds, label=cluster, on_halt=on_halt
            ) as driver:
                if resumed is not None:
                    result = driver.resume(resumed, [], store.driver_alive(resumed))
                else:
                    result = driver.start(rollout_id)
        except Exception as exc:  # pylint: disable=broad-except  # said for this cluster; the others go on
            log.warning("cluster %s: its rollout failed", cluster, exc_info=True)
            result = {"status": "refused" if isinstance(exc, ValueError) else plan_lib.HALTED, "comment": str(exc)}
        self.ended.put((cluster, result))

    def _halted(self, cluster):
        """A cluster's driver halts (in its thread, before it returns): with ``halt=fleet`` the other clusters are
        asked at once to stop after their node in flight, not when this driver has finished cancelling its gates."""
        if self.args.get("halt") != fleet_lib.HALT_FLEET:
            return
        for other, entry in list(self.record["clusters"].items()):
            if other != cluster and entry["rollout"] and entry["status"] in fleet_lib.GOING:
                self.rollouts.request_abort(entry["rollout"])
                self.say(f"halt=fleet: cluster {other} stops after its node in flight ({cluster} halted)", record=False)

    def _ended(self, cluster, result):
        """A cluster's driver returned ``result``: on record; with ``halt=fleet`` the others stop (asked already by
        :meth:`_halted` when it halted; a refusal or an exception did not halt a driver)."""
        self.threads.pop(cluster, None)
        status = result.get("status") or plan_lib.HALTED
        reason = result.get("reason") or result.get("comment")
        stop = fleet_lib.mark_ended(self.record, cluster, status, reason, time.time())
        self.say(f"cluster {cluster}: {status}" + (f": {reason}" if reason else ""))
        for other in stop:
            self.say(f"halt=fleet: cluster {other} stops after its node in flight")
            self.rollouts.request_abort(self.record["clusters"][other]["rollout"])

    def run(self):
        try:
            return self._run()
        finally:
            if self.lock is not None:
                os.close(self.lock)
                self.lock = None

    def _run(self):
        record, aborting = self.record, False
        while True:
            if not aborting and self.rollouts.abort_requested(record["id"]):
                aborting = True
                self.say("aborted by the operator: every cluster stops after its node in flight")
                for cluster in fleet_lib.running(record):
                    self.rollouts.request_abort(record["clusters"][cluster]["rollout"])
            if not aborting:
                self._start_clusters(fleet_lib.startable(record))
            if not any(thread.is_alive() for thread in self.threads.values()) and self.ended.empty():
                if aborting or not fleet_lib.startable(record):
                    break
            try:
                ended = [self.ended.get(timeout=POLL)]
            except queue.Empty:
                continue
            while not self.ended.empty():  # every cluster that ended meanwhile, then one save
                ended.append(self.ended.get_nowait())
            for cluster, result in ended:
                self._ended(cluster, result)
            self.save()
        fleet_lib.finish(record, time.time(), aborted=aborting)
        self.rollouts.clear_abort(record["id"])
        self.save()
        self.say(record["status"] + (f": {record['reason']}" if record["reason"] else ""))
        self.fire("finish" if record["status"] == fleet_lib.DONE else "halted", {"reason": record["reason"]})
        result = self.report()
        result["retcode"] = 0 if record["status"] == fleet_lib.DONE else 1
        return result

    def report(self):
        return fleet_report(self.record, self.rollouts)


def fleet_report(record, rollouts):
    """``rolling.status`` of a fleet: its clusters' rollouts as they stand on record."""
    summaries = {}
    for entry in record["clusters"].values():
        if entry["rollout"]:
            try:
                summaries[entry["rollout"]] = plan_lib.summary(rollouts.load(entry["rollout"]))
            except ValueError:
                pass  # its pre-flight had not saved it yet
    return fleet_lib.report(record, summaries)
