"""Scale of a fleet's logic without daemons: 2,000 made-up nodes in 500 clusters of 4, all clusters in flight.

The plan is the runner's (``Master.fleet`` and ``FleetRun.start``): ``group_by_cluster`` over every node's
``expressware:cluster``, ``plan_waves``, ``new_fleet`` (+ its ``args`` and ``driver``, one save). The walk mirrors
``_utils/expressware_fleet_run.py`` (``FleetRun._run``: ``startable`` + ``mark_started`` + one save for the
clusters started at once, ``mark_ended`` + one save for the clusters that ended meanwhile, ``finish`` + a save)
with, per cluster, the loop of ``_utils/expressware_driver.py`` step for step minus Salt (as ``bench/scale.py`` does
for one cluster):

* ``Driver.start``: the cluster's lease taken (``LeaseStore.acquire``), ``preflight_record`` + save; then
  ``new_record`` from made-up pre-flight facts, its ``args``/``driver``/``fleet`` and the pre-flight's log kept;
* ``Driver.run``: a save, then ``step`` until there is nothing to do: a look at an abort request, ``next_action``,
  the first node prepared before a build/stage (``upcoming`` + ``mark_prepared`` + ``save_node``), the action,
  then ``save`` (``save_node`` after an update);
* the build (``SharedBuilds``): the first cluster of a group key builds, the others wait for it, then send the
  RPMs to their own builder; ``mark_built``;
* per node (``do_update``): ``mark_phase(stopping)`` + ``save_node``, the go-ahead of its prepared job
  (``clear_gate`` + ``save_node``), the staging done while the first node is down (``background_action``,
  ``mark_staged`` + save), the three phase events (``mark_phase`` + ``save_node`` each; at ``installing`` the next
  node prepared, + ``save_node``), ``mark_active``; ``finish`` releases the lease; a last save.

Each cluster is a generator that stops where its driver would wait for Salt (a pre-flight, a build, a phase
event); each tick every running cluster takes its next step, so the clusters' saves interleave as in the runner's
threads. No Salt, no sleeping, no threads. The code under test is the repository's ``_utils/``.
"""

import cProfile
import io
import json
import os
import pstats
import queue
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # noqa: E402  (a sibling file: its loader, made-up facts and options)

rollout = scale.rollout
store_lib = scale.store_lib
fleet_lib = scale.load_util("expressware_fleet")
fleet_run_lib = scale.load_util("expressware_fleet_run")

VERSION = "5.26.0"
SIA = "salt://expressware/Dolphin_eXpressWare-5.26.0.sh"
TARGETS = {"seconds": 2.0, "record_bytes": 2_000_000}


def make_fleet(clusters, size):
    """``{minion: its expressware:cluster}`` for ``clusters`` clusters of ``size`` nodes (``c0001`` ... ``c0500``;
    ``c0001-n1`` ... ``c0001-n4``), and the pre-flight facts of every node: a cluster on one kernel, the clusters
    on two kernels in turn (two build groups for the whole fleet)."""
    width = len(str(clusters))
    minion_clusters, facts = {}, {}
    base = scale.make_facts(2, groups=2)
    kernel_facts = list(base.values())
    for c in range(clusters):
        name = f"c{c + 1:0{width}d}"
        for n in range(size):
            minion = f"{name}-n{n + 1}"
            minion_clusters[minion] = name
            facts[minion] = dict(kernel_facts[c % 2], grains=dict(kernel_facts[c % 2]["grains"]))
    return minion_clusters, facts


class Stores:
    """The master's cache as the runner uses it (``rollouts``, ``leases``, ``fleets``), or nothing (logic only)."""

    def __init__(self, cachedir):
        self.cachedir = cachedir
        self.rollouts = store_lib.rollout_store({"cachedir": cachedir}) if cachedir else None
        self.leases = store_lib.lease_store({"cachedir": cachedir}) if cachedir else None
        self.fleets = fleet_run_lib.FleetStore(self.rollouts) if cachedir else None
        self.saves = {"rollout save": 0, "rollout save_node": 0, "rollout save_changes": 0, "fleet save": 0, "lease": 0}
        self.lock = threading.Lock()  # the counts, from the clusters' threads

    def count(self, kind):
        with self.lock:
            self.saves[kind] += 1

    def save(self, record, minion=None, group=None):
        if self.rollouts is None:
            return
        if group is not None:
            self.rollouts.save_changes(record, nodes=tuple(record["groups"][group]["nodes"]), groups=(group,))
            self.count("rollout save_changes")
        elif minion is None:
            self.rollouts.save(record)
            self.count("rollout save")
        else:
            self.rollouts.save_node(record, minion)
            self.count("rollout save_node")

    def save_fleet(self, record):
        if self.fleets is not None:
            self.fleets.save(record)
            self.count("fleet save")

    def acquire(self, cluster, holder):
        if self.leases is None:
            return {"granted": True}
        self.count("lease")
        return self.leases.acquire(cluster, holder, purpose=f"rolling update to {VERSION}")

    def release(self, cluster, holder):
        if self.leases is not None:
            self.leases.release(cluster, holder=holder)

    def abort_requested(self, rollout_id):
        return self.rollouts is not None and self.rollouts.abort_requested(rollout_id)

    def bytes_on_disk(self):
        """Every file the runner left under ``expressware/`` (records, journals of node changes, fleet record),
        lock files of the leases included; and the fleet's record alone."""
        total, fleet = 0, 0
        for root, _dirs, files in os.walk(os.path.join(self.cachedir, "expressware")):
            for name in files:
                size = os.path.getsize(os.path.join(root, name))
                total += size
                if os.path.basename(root) == "fleets":
                    fleet += size
        return total, fleet


class Builds:
    """``SharedBuilds``: the first cluster of a key builds, the others wait until it has: a tick at a time in one
    thread, blocked on an event with a thread per cluster (``threaded``), as ``SharedBuilds`` waits."""

    def __init__(self, threaded=False):
        self.entries = {}
        self.threaded = threaded


def cluster_walk(cluster, nodes, facts, rollout_id, fleet_id, args, stores, builds, clock, timings):
    """One cluster's ``Driver.start`` + ``run``: a generator, one ``yield`` where the driver waits for Salt;
    returns (``StopIteration.value``) what the driver returns (the rollout's summary)."""
    holder = f"rollout {rollout_id}"

    def say(message):
        rollout.log(record, clock(), message)

    def save(minion=None, group=None):
        record["updated"] = clock()
        stores.save(record, minion, group)

    def prepare(minion):
        if minion is not None and not record["nodes"][minion].get("gate"):
            rollout.mark_prepared(record, minion, f"{rollout_id}:{len(minion) * 2654435761 % 2**32:08x}", clock())
            save(minion)

    # -- Driver.start
    if not stores.acquire(cluster, holder)["granted"]:
        return {"status": "refused"}
    record = rollout.preflight_record(rollout_id, cluster, VERSION, SIA, args["options"], clock())
    record["driver"] = {"pid": os.getpid(), "host": "bench", "since": clock()}
    record["args"] = args
    record["fleet"] = fleet_id
    save()
    say(f"pre-flight of {list(nodes)!r} (list) for {VERSION}")
    yield  # the pre-flight on the cluster's nodes
    started = time.perf_counter()
    planned = rollout.new_record(
        rollout_id, cluster, VERSION, SIA, {m: facts[m] for m in nodes}, args["options"], clock()
    )
    timings["new_record"] += time.perf_counter() - started
    planned.update(created=record["created"], driver=record["driver"], args=record["args"], fleet=fleet_id)
    planned["log"] = record["log"] + planned["log"]
    record = planned
    say(f"rollout {rollout_id}: {len(record['order'])} node(s) in order {', '.join(record['order'])}")
    # -- Driver.run
    record["driver"] = {"pid": os.getpid(), "host": "bench", "since": clock()}
    save()
    while True:
        # -- Driver.step
        if stores.abort_requested(rollout_id):
            raise RuntimeError("no abort is requested in this benchmark")
        action = rollout.next_action(record)
        if action is None:
            break
        kind = action[0]
        if kind in ("build", "stage"):
            prepare(rollout.upcoming(record))
        if kind == "build":
            key = action[1]
            mine = {"done": False, "cluster": cluster, "event": threading.Event()}
            entry = builds.entries.setdefault(key, mine)  # one step: the clusters' threads race for it
            if entry is mine:
                say(f"building RPMs for {key} on {record['groups'][key]['builder']} for the whole fleet (it stays up)")
                yield  # the build, and its push to the master
                entry["done"] = True
                entry["event"].set()
            else:
                say(f"RPMs for {key}: built once for the fleet (cluster {entry['cluster']}); waiting for them")
                while not entry["done"]:
                    if builds.threaded:
                        entry["event"].wait()  # as SharedBuilds (a spin here would starve the builder's thread)
                    else:
                        yield
                yield  # sent to this cluster's builder
            rollout.mark_built(record, key, scale.RPMS, clock())
        elif kind == "stage":
            say(
                f"staging {len(scale.RPMS)} RPM(s) of {action[1]} on "
                f"{len(record['groups'][action[1]]['nodes']) - 1} node(s)"
            )
            yield
            rollout.mark_staged(record, action[1], clock())
        elif kind == "update":
            minion = action[1]
            position = record["order"].index(minion) + 1
            # The cluster health gate: passed at once (the view, fed while the last node was down, says so); its
            # own time is on record.
            spent = record.setdefault("health", {}).setdefault("gate_s", {})
            spent[minion] = round(spent.get(minion, 0.0) + 0.0123, 4)
            rollout.mark_phase(record, minion, rollout.STOPPING, clock())
            save(minion)
            say(f"{minion} ({position}/{len(record['order'])}): updating")
            rollout.clear_gate(record, minion)  # its go-ahead, acknowledged
            save(minion)
            tried = []
            while (work := rollout.background_action(record, tried)) is not None:
                tried.append(work)
                say(
                    f"staging {len(scale.RPMS)} RPM(s) of {work[1]} on "
                    f"{len(record['groups'][work[1]]['nodes']) - 1} node(s)"
                )
                yield
                rollout.mark_staged(record, work[1], clock())
                save(group=work[1])
            for phase in (rollout.STOPPING, rollout.INSTALLING, rollout.WAITING):
                yield  # the node's phase event
                rollout.mark_phase(record, minion, phase, clock())
                save(minion)
                if phase == rollout.INSTALLING:
                    prepare(rollout.upcoming(record, current=minion))
            yield  # the node's active event (its own node state)
            rollout.mark_active(record, minion, VERSION, clock())  # logs "active on" (the driver's say does not)
        elif kind == "finish":
            rollout.finish(record, clock())
            stores.release(cluster, holder)
        else:
            raise RuntimeError(f"unexpected action {action}")
        save(action[1] if kind == "update" else None, group=action[1] if kind in ("build", "stage") else None)
    save()
    result = rollout.summary(record)
    say(record["status"])
    return result


def drive(clusters, size, cachedir=None, parallel=None, threaded=False):
    """Plan and walk a fleet of ``clusters`` clusters of ``size`` nodes; saves when ``cachedir`` is given.

    ``threaded``: each cluster's walk in a thread of its own, as the runner has them (``FleetRun._walk``), instead of
    the ticks of one thread: the clusters' saves (and their fsyncs, which release the GIL) may then overlap."""
    clock = scale.Clock()
    stores = Stores(cachedir)
    builds = Builds(threaded)
    timings = {"new_record": 0.0}
    minion_clusters, facts = make_fleet(clusters, size)
    args = {  # rolling.update's checked arguments, as a real fleet's records hold them
        "tgt": "*",
        "tgt_type": "glob",
        "version": VERSION,
        "sia": SIA,
        "cluster": "default",
        "order": None,
        "sort": "name",
        "options": dict(scale.OPTIONS, window=None, window_tz=None),
        "cluster_members": None,
        "health_wait": 300.0,
        "cluster_states": None,
        "parallel": parallel,
        "halt": fleet_lib.HALT_CLUSTER,
        "waves": None,
    }
    started = time.perf_counter()
    # -- Master.fleet, FleetRun.start
    groups = fleet_lib.group_by_cluster(minion_clusters, "default")
    waves = fleet_lib.plan_waves(groups, None, 0)
    options = {"parallel": parallel, "halt": fleet_lib.HALT_CLUSTER, "canary": 0, "waves": None}
    fleet_id = "fleet-20261201T000000-abcdef"
    record = fleet_lib.new_fleet(fleet_id, VERSION, groups, waves, options, clock())
    record["args"] = args
    record["driver"] = {"pid": os.getpid(), "host": "bench", "since": clock()}
    stores.save_fleet(record)
    fleet_lib.log(record, clock(), f"{len(groups)} cluster(s), {len(minion_clusters)} node(s), {len(waves)} wave(s)")
    plan_s = time.perf_counter() - started

    # -- FleetRun.run
    walking, ended, results = {}, [], {}
    launched = 0

    def start_clusters(clusters):
        """``FleetRun._start_clusters``: their ids on record first (one save for them all), then the drivers."""
        nonlocal launched
        started_now = []
        for cluster in clusters:
            launched += 1
            rollout_id = f"20261201T000000-{launched:06x}"
            fleet_lib.mark_started(record, cluster, rollout_id, clock())
            started_now.append((cluster, rollout_id))
        if started_now:
            record["updated"] = clock()
            stores.save_fleet(record)
        for cluster, rollout_id in started_now:
            cluster_args = {k: v for k, v in args.items() if k not in ("parallel", "halt", "waves")}
            cluster_args.update(cluster=cluster, tgt=list(groups[cluster]), tgt_type="list", fleet=fleet_id)
            walking[cluster] = cluster_walk(
                cluster, groups[cluster], facts, rollout_id, fleet_id, cluster_args, stores, builds, clock, timings
            )
            if threaded:
                threads[cluster] = threading.Thread(target=consume, args=(cluster, walking.pop(cluster)), daemon=True)
                threads[cluster].start()

    def end_clusters(batch):
        """``FleetRun._ended`` for every cluster that ended meanwhile, then one save."""
        for cluster, result in batch:
            results[cluster] = result
            stop = fleet_lib.mark_ended(record, cluster, result["status"], result.get("reason"), clock())
            fleet_lib.log(record, clock(), f"cluster {cluster}: {result['status']}")
            assert not stop, stop
        record["updated"] = clock()
        stores.save_fleet(record)

    threads, ended_queue = {}, queue.Queue()

    def consume(cluster, walk):
        result = {"status": "halted", "reason": "the benchmark's walk failed"}
        try:
            while True:
                next(walk)
                time.sleep(0)  # where the driver waits for Salt: another cluster's thread goes on
        except StopIteration as stop:
            result = stop.value
        finally:
            ended_queue.put((cluster, result))

    ticks = 0
    while threaded:  # FleetRun._run, as it is
        start_clusters(fleet_lib.startable(record))
        if not any(t.is_alive() for t in threads.values()) and ended_queue.empty():
            if not fleet_lib.startable(record):
                break
        batch = [ended_queue.get()]
        while not ended_queue.empty():
            batch.append(ended_queue.get_nowait())
        for cluster, _ in batch:
            threads.pop(cluster).join()
        end_clusters(batch)
    while not threaded:
        start_clusters(fleet_lib.startable(record))
        if not walking and not ended and not fleet_lib.startable(record):
            break
        ticks += 1
        for cluster, walk in list(walking.items()):  # each running cluster takes its next step
            try:
                next(walk)
            except StopIteration as stop:
                del walking[cluster]
                ended.append((cluster, stop.value))
        if ended:  # the clusters that ended in this tick: one turn of FleetRun._run's loop
            end_clusters(ended)
            ended.clear()
    fleet_lib.finish(record, clock())
    record["updated"] = clock()
    stores.save_fleet(record)
    seconds = time.perf_counter() - started
    summaries = {e["rollout"]: results[c] for c, e in record["clusters"].items()}
    report = fleet_lib.report(record, summaries)
    assert record["status"] == fleet_lib.DONE, record["reason"]
    assert report["total"]["nodes"] == {"active": clusters * size}, report["total"]
    out = {
        "clusters": clusters,
        "nodes": clusters * size,
        "parallel": parallel,
        "threaded": threaded,
        "seconds": seconds,
        "plan_s": plan_s + timings["new_record"],
        "walk_s": seconds - plan_s - timings["new_record"],
        "new_record_s": timings["new_record"],
        "ticks": ticks,
        "builds": len(builds.entries),
        "saves": dict(stores.saves),
    }
    if cachedir:
        out["bytes_on_disk"], out["fleet_record_bytes"] = stores.bytes_on_disk()
        out["files"] = sum(len(files) for _r, _d, files in os.walk(os.path.join(cachedir, "expressware")))
        one = stores.rollouts.load(next(iter(record["clusters"].values()))["rollout"])
        stored = store_lib.encode_record(one)  # as on disk
        out["rollout_record_parts"] = {k: len(json.dumps(v, separators=(",", ":"))) for k, v in stored.items()}
        out["rollout_record_log_lines"] = len(one["log"])
    return out


def profiled(clusters, size, cachedir=None, top=12):
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    drive(clusters, size, cachedir)
    profile.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append(
            {
                "function": f"{Path(filename).name}:{line}({func})" if line else func,
                "calls": ncalls,
                "own_s": tottime,
                "cumulative_s": cumtime,
            }
        )
    rows.sort(key=lambda r: r["own_s"], reverse=True)

    def cumulative(name_part, file_part=""):
        hits = [r for r in rows if name_part in r["function"] and file_part in r["function"]]
        return max((r["cumulative_s"] for r in hits), default=0.0)

    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(top)
    return {
        "wall_s_under_profiler": wall,
        "top_own_time": rows[:top],
        "cumulative": {
            "the fleet's logic (startable, mark_*, finish, new_fleet)": sum(
                cumulative(f"({name})", "expressware_fleet.py")
                for name in ("startable", "mark_started", "mark_ended", "finish", "new_fleet", "group_by_cluster")
            ),
            "FleetStore.save": cumulative("(save)", "expressware_fleet_run"),
            "RolloutStore.save": cumulative("(save)", "expressware_store"),
            "RolloutStore.save_node": cumulative("(save_node)", "expressware_store"),
            "RolloutStore.save_changes (node steps included)": cumulative("(save_changes)", "expressware_store"),
            "LeaseStore.acquire": cumulative("(acquire)", "expressware_store"),
            "LeaseStore.release": cumulative("(release)", "expressware_store"),
            "os.fsync": cumulative("fsync"),
            "next_action": cumulative("(next_action)"),
            "new_record": cumulative("(new_record)"),
        },
        "pstats_text": text.getvalue(),
    }


def fsync_cost(directory, count=50):
    """The mean cost of one small file written and fsync'ed here (the disk's share of every full save)."""
    os.makedirs(directory, exist_ok=True)
    start = time.perf_counter()
    for i in range(count):
        with open(os.path.join(directory, f"f{i}"), "w", encoding="utf-8") as handle:
            handle.write("x" * 4000)
            handle.flush()
            os.fsync(handle.fileno())
    return (time.perf_counter() - start) / count


def run(workdir, clusters=500, size=4, profile=True, log=print):
    """Logic only, then with the runner's saves (a fresh master cache; ticks in one thread, then a thread per
    cluster), a profile of each variant of the ticks over the target."""
    results = {"clusters": clusters, "size": size, "nodes": clusters * size, "targets": TARGETS}
    log(f"fleet scale: {clusters} clusters of {size}, logic only")
    results["no_save"] = drive(clusters, size)
    cachedir = str(Path(workdir) / "cache")
    log(f"fleet scale: {clusters} clusters of {size}, with the runner's saves under {cachedir}")
    results["with_saves"] = drive(clusters, size, cachedir)
    shutil.rmtree(cachedir, ignore_errors=True)
    log(f"fleet scale: {clusters} clusters of {size}, with the runner's saves, a thread per cluster (as the runner)")
    results["with_saves_threads"] = drive(clusters, size, cachedir, threaded=True)
    results["fsync_s"] = fsync_cost(str(Path(workdir) / "fsync"))
    results["directory"] = cachedir
    if profile and results["with_saves"]["seconds"] > TARGETS["seconds"]:
        shutil.rmtree(cachedir, ignore_errors=True)
        log("fleet scale: with saves over the target: again, under cProfile")
        results["profile_save"] = profiled(clusters, size, cachedir)
    if profile and results["no_save"]["seconds"] > TARGETS["seconds"]:
        log("fleet scale: logic over the target: again, under cProfile")
        results["profile_no_save"] = profiled(clusters, size)
    shutil.rmtree(cachedir, ignore_errors=True)
    shutil.rmtree(Path(workdir) / "fsync", ignore_errors=True)
    return results


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="bench-fleet-scale-") as tmp:
        out = run(tmp, int(sys.argv[1]) if len(sys.argv) > 1 else 500, profile="--profile" in sys.argv)
    for key in ("no_save", "with_saves", "with_saves_threads", "fsync_s"):
        print(key, json.dumps(out[key], indent=1))
    for key in ("profile_save", "profile_no_save"):
        if key in out:
            print(json.dumps(out[key]["cumulative"], indent=1))
            print(out[key]["pstats_text"])
