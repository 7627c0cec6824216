"""Fleets without daemons: grouping by cluster, waves and canary, what may start (``parallel``), what a halt stops,
the record and the report (``_utils/expressware_fleet.py``); and the fleet's walk (``expressware_fleet_run``) with
drivers that stand in for the clusters' rollouts: clusters side by side, ``halt=fleet``, abort, resume, one build
per group for the whole fleet."""

import contextlib
import os
import threading
import time

import pytest

from tests.shared_code import load

fleet = load("expressware_fleet")
fleet_run = load("expressware_fleet_run")
store = load("expressware_store")
rollout = load("expressware_rollout")
staging = load("expressware_staging")

GROUPS = {"a": ["a1", "a2"], "b": ["b1", "b2"], "c": ["c1"]}


def test_nodes_are_grouped_by_their_cluster_and_the_unset_go_to_the_default():
    clusters = {"a1": "a", "b1": "b", "x": None, "a2": "a", "y": ""}
    assert fleet.group_by_cluster(clusters, "default") == {"a": ["a1", "a2"], "b": ["b1"], "default": ["x", "y"]}


@pytest.mark.parametrize("bad", ["a b", "../x", 5, "x" * 65])
def test_a_cluster_name_that_is_no_name_is_refused_naming_the_minion(bad):
    with pytest.raises(fleet.FleetError, match=r"^m1: its expressware:cluster"):
        fleet.group_by_cluster({"m1": bad}, "default")


def test_waves_take_whole_clusters_in_order():
    assert fleet.plan_waves(GROUPS, [["b2"], ["a1", "c1"]]) == [["b"], ["a", "c"]]
    assert fleet.plan_waves(GROUPS) == [["a", "b", "c"]]
    assert fleet.plan_waves(GROUPS, canary=1) == [["a"], ["b", "c"]]
    assert fleet.plan_waves(GROUPS, canary=5) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    "waves, canary, message",
    [
        ([["a1"]], 0, r"cluster\(s\) b, c are in no wave"),
        ([["a1"], ["a2"], ["b1", "c1"]], 0, "wave 2 holds no targeted cluster"),
        ([["zz"], ["a1", "b1", "c1"]], 0, "wave 1 holds no targeted cluster"),
        ([["a1", "b1", "c1"]], 1, "canary and waves"),
    ],
)
def test_bad_waves_are_refused(waves, canary, message):
    with pytest.raises(fleet.FleetError, match=message):
        fleet.plan_waves(GROUPS, waves, canary)


def fleet_record(waves=None, **options):
    options = dict({"parallel": None, "halt": "cluster", "canary": 0, "waves": None}, **options)
    return fleet.new_fleet("fleet-1", "5.26.0", GROUPS, waves or [["a", "b", "c"]], options, 1.0)


def start_all(record):
    started = fleet.startable(record)
    for cluster in started:
        fleet.mark_started(record, cluster, "r-" + cluster, 2.0)
    return started


def test_all_clusters_start_at_once_by_default_and_parallel_bounds_them():
    assert start_all(fleet_record()) == ["a", "b", "c"]
    record = fleet_record(parallel=2)
    assert start_all(record) == ["a", "b"]
    assert fleet.startable(record) == []
    fleet.mark_ended(record, "a", "done", None, 3.0)
    assert fleet.startable(record) == ["c"]


def test_a_wave_is_a_gate_for_the_next():
    record = fleet_record(waves=[["b"], ["a", "c"]])
    assert start_all(record) == ["b"]
    fleet.mark_ended(record, "b", "halted", "node b1 failed", 3.0)
    assert fleet.startable(record) == []  # b did not finish: the next wave never starts
    fleet.finish(record, 4.0)
    assert record["status"] == "halted"
    assert record["clusters"]["a"]["status"] == "not started"
    assert "b (halted: node b1 failed)" in record["reason"] and "a (not started)" in record["reason"]


def test_a_halt_stops_its_cluster_only_unless_halt_fleet():
    record = fleet_record()
    start_all(record)
    assert fleet.mark_ended(record, "a", "halted", "x", 3.0) == []
    record = fleet_record(halt="fleet", parallel=2)
    start_all(record)
    assert fleet.mark_ended(record, "a", "halted", "x", 3.0) == ["b"]
    assert fleet.startable(record) == []  # c does not start either


def test_resume_starts_the_unstarted_and_resumes_the_stopped():
    record = fleet_record(halt="fleet", parallel=2)
    start_all(record)
    fleet.mark_ended(record, "a", "done", None, 3.0)
    fleet.mark_ended(record, "b", "halted", "x", 3.0)
    fleet.finish(record, 4.0)
    assert fleet.resume(record, 5.0) == ["b"]
    assert record["status"] == "running" and record["clusters"]["c"]["status"] == "pending"
    fleet.mark_ended(record, "b", "done", None, 6.0)
    assert fleet.startable(record) == ["c"]
    fleet.mark_started(record, "c", "r-c", 6.0)
    fleet.mark_ended(record, "c", "done", None, 7.0)
    fleet.finish(record, 8.0)
    assert record["status"] == "done"
    with pytest.raises(fleet.FleetError, match="is done"):
        fleet.resume(record, 9.0)


def test_the_report_has_a_line_per_cluster_and_a_total():
    record = fleet_record()
    start_all(record)
    summaries = {
        "r-a": {"status": "done", "reason": None, "counts": {"active": 2}},
        "r-b": {"status": "halted", "reason": "b2 failed", "counts": {"active": 1, "failed": 1}},
    }
    report = fleet.report(record, summaries)
    assert report["clusters"]["a"] == {
        "rollout": "r-a",
        "wave": 1,
        "status": "done",
        "reason": None,
        "nodes": 2,
        "counts": {"active": 2},
    }
    assert report["clusters"]["b"]["reason"] == "b2 failed"
    assert report["clusters"]["c"]["status"] == "preflight"
    assert report["total"] == {
        "clusters": 3,
        "by_status": {"done": 1, "halted": 1, "preflight": 1},
        "nodes": {"active": 3, "failed": 1, "pending": 1},
    }


# -- the walk, with stand-in drivers ----------------------------------------------------------------------------


class StandIn:
    """A cluster's driver: its rollout takes ``seconds``, ends with ``outcome`` (done or halted), stops early on an
    abort request, and notes when it ran."""

    def __init__(self, master, args, builds, label, on_halt):
        self.master, self.args, self.builds, self.label, self.on_halt = master, args, builds, label, on_halt

    def _walk(self, rollout_id, record=None):
        rollouts = self.master.rollouts()
        record = record or {"id": rollout_id, "cluster": self.args["cluster"], "fleet": self.args.get("fleet")}
        begun = time.monotonic()
        self.master.spans[self.args["cluster"]] = [begun, None]
        status, reason = self.master.outcomes.get(self.args["cluster"], ("done", None))
        while time.monotonic() - begun < self.master.seconds_of.get(self.args["cluster"], self.master.seconds):
            if rollouts.abort_requested(rollout_id):
                status, reason = "aborted", "aborted by the operator"
                rollouts.clear_abort(rollout_id)
                break
            time.sleep(0.01)
        self.master.spans[self.args["cluster"]][1] = time.monotonic()
        if status == "halted":
            self.on_halt()  # as Driver.halt does, then the driver takes its time to return (its gates cancelled)
            self.master.halted_at = time.monotonic()
            time.sleep(self.master.linger)
        record.update(status=status, reason=reason, nodes={}, order=[], groups={}, frontend=None, version="5.26.0")
        rollouts.save(record)
        return {"status": status, "reason": reason}

    def start(self, rollout_id):
        return self._walk(rollout_id)

    def resume(self, record, skip, alive):
        self.master.outcomes.pop(record["cluster"], None)
        return self._walk(record["id"], record)


class StandInMaster:
    def __init__(self, tmp_path, seconds=0.3, outcomes=None):
        self.tmp_path, self.seconds, self.outcomes, self.spans = tmp_path, seconds, dict(outcomes or {}), {}
        self.fired, self.seconds_of, self.linger, self.halted_at = [], {}, 0.0, None
        (tmp_path / "rollouts").mkdir(exist_ok=True)  # as a driver's first save makes it
        self.ids = iter(range(1000))

    def rollouts(self):
        return store.RolloutStore(str(self.tmp_path / "rollouts"))

    @contextlib.contextmanager
    def driver(self, args, progress, builds=None, label=None, on_halt=None):
        yield StandIn(self, args, builds, label, on_halt)

    def fire(self, tag, data):
        self.fired.append(tag)


ARGS = {
    "version": "5.26.0",
    "order": None,
    "cluster_members": None,
    "options": {"canary": 0, "window": None, "window_tz": None},
    "given_window": {"window": None, "window_tz": None},
}


def run_fleet(master, waves=(("a", "b", "c"),), **options):
    args = dict(ARGS, parallel=options.get("parallel"), halt=options.get("halt", "cluster"), waves=None)
    run = fleet_run.FleetRun(master, args, lambda cluster: (None, None), lambda: f"r{next(master.ids)}", progress=False)
    return run, run.start("fleet-t", GROUPS, [list(w) for w in waves])


def overlap(spans, one, other):
    return spans[one][0] < spans[other][1] and spans[other][0] < spans[one][1]


def test_clusters_walk_side_by_side_and_the_record_says_each_is_done(tmp_path):
    master = StandInMaster(tmp_path)
    run, result = run_fleet(master)
    assert result["status"] == "done" and result["retcode"] == 0
    assert overlap(master.spans, "a", "b") and overlap(master.spans, "b", "c")
    assert {c: line["status"] for c, line in result["clusters"].items()} == {"a": "done", "b": "done", "c": "done"}
    saved = run.fleets.load("fleet-t")
    assert saved["status"] == "done" and all(e["rollout"] for e in saved["clusters"].values())
    assert saved["driver"]["store"] == run.fleets.directory
    assert store._lock_held(os.path.join(run.fleets.directory, "fleet-t.driver")) is False  # its driver lock is free
    assert master.rollouts().load(saved["clusters"]["a"]["rollout"])["fleet"] == "fleet-t"
    assert master.fired[0].endswith("/start") and master.fired[-1].endswith("/finish")


def test_parallel_one_walks_one_cluster_after_the_other(tmp_path):
    master = StandInMaster(tmp_path, seconds=0.1)
    _, result = run_fleet(master, parallel=1)
    assert result["status"] == "done"
    assert not overlap(master.spans, "a", "b") and not overlap(master.spans, "b", "c")


def test_a_halt_stops_only_its_cluster_by_default(tmp_path):
    master = StandInMaster(tmp_path, outcomes={"b": ("halted", "b2 failed")})
    _, result = run_fleet(master)
    assert result["retcode"] == 1 and result["status"] == "halted"
    assert {c: line["status"] for c, line in result["clusters"].items()} == {"a": "done", "b": "halted", "c": "done"}


def test_halt_fleet_stops_the_others_after_their_node_in_flight(tmp_path):
    master = StandInMaster(tmp_path, seconds=2.0, outcomes={"b": ("halted", "b2 failed")})
    master.seconds_of = {"b": 0.05}  # b halts at once; a and c are asked to stop
    master.linger = 1.0  # b's driver returns a second after its halt
    _, result = run_fleet(master, halt="fleet")
    statuses = {c: line["status"] for c, line in result["clusters"].items()}
    assert statuses == {"a": "aborted", "b": "halted", "c": "aborted"}
    # Asked at the halt itself, not when b's driver returned.
    assert master.spans["a"][1] - master.halted_at < 0.5 and master.spans["c"][1] - master.halted_at < 0.5


def test_an_aborted_fleet_stops_and_resume_finishes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(fleet_run, "POLL", 0.05)
    master = StandInMaster(tmp_path, seconds=2.0)
    rollouts = master.rollouts()
    threading.Timer(0.3, rollouts.request_abort, args=("fleet-t",)).start()
    run, result = run_fleet(master, waves=(("a",), ("b", "c")))
    assert result["status"] == "aborted"
    assert {c: line["status"] for c, line in result["clusters"].items()} == {
        "a": "aborted",
        "b": "not started",
        "c": "not started",
    }
    master.seconds = 0.05
    again = fleet_run.FleetRun(
        master, run.args, lambda cluster: (None, None), lambda: f"r{next(master.ids)}", progress=False
    ).resume(run.fleets.load("fleet-t"))
    assert again["status"] == "done", again
    assert again["clusters"]["a"]["rollout"] == result["clusters"]["a"]["rollout"]  # resumed, not started anew


# -- one build per group for the whole fleet ---------------------------------------------------------------------


class BuildSalt:
    def time(self):
        return 1.0


class BuildStaging:
    def __init__(self):
        self.built, self.pushed, self.sent = [], [], []

    def build(self, builder, sia, workdir, timeout):
        time.sleep(0.1)
        self.built.append(builder)
        return "/master/" + builder, ["a.rpm"]

    def push(self, group, timeout):
        self.pushed.append(group["builder"])

    def send(self, minions, source, names):
        self.sent.append((tuple(minions), source))


class BuildDriver:
    def __init__(self, cluster, builder, staging_):
        self.args = {"cluster": cluster}
        self.staging, self.salt, self.halted, self.fired = staging_, BuildSalt(), None, []
        self.record = {
            "log": [],
            "sia": "x.sh",
            "options": {"node_timeout": 5},
            "nodes": {builder: {"workdir": "/w"}},
            "groups": {"k": {"builder": builder, "nodes": [builder], "built": False, "rpms": [], "staged": False}},
        }

    def say(self, message):
        pass

    def halt(self, reason):
        self.halted = reason

    def fire(self, suffix, data):
        self.fired.append((suffix, data))


def test_one_build_per_group_for_the_whole_fleet():
    shared, staging_ = fleet_run.SharedBuilds(), BuildStaging()
    drivers = [BuildDriver(c, c + "1", staging_) for c in ("a", "b", "c")]
    threads = [threading.Thread(target=shared.build, args=(d, "k")) for d in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(staging_.built) == 1 and staging_.pushed == staging_.built
    builder = staging_.built[0]
    assert sorted(m for (m,), _ in staging_.sent) == sorted(
        d.args["cluster"] + "1" for d in drivers if d.args["cluster"] + "1" != builder
    )
    for driver in drivers:
        group = driver.record["groups"]["k"]
        assert driver.halted is None and group["built"] and group["source"] == "/master/" + builder


def test_a_failed_fleet_build_halts_every_cluster_that_needs_it():
    class Failing(BuildStaging):
        def build(self, builder, sia, workdir, timeout):
            raise staging.StagingError("sia.build_rpm failed")

    shared, staging_ = fleet_run.SharedBuilds(), Failing()
    first, second = BuildDriver("a", "a1", staging_), BuildDriver("b", "b1", staging_)
    shared.build(first, "k")
    shared.build(second, "k")
    assert first.halted == "build for k failed: sia.build_rpm failed"
    assert second.halted == "the fleet's build for k failed in cluster a: sia.build_rpm failed"
    assert not second.record["groups"]["k"]["built"]
