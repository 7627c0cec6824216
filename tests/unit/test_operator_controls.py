"""The driver's maintenance window and long-wait notes (issue 12), on the simulated cluster of
``tests/unit/simulation.py`` without faults: a virtual clock, so the tests control time."""

import copy
import io
import random

import pytest

from tests.unit import simulation
from tests.unit.simulation import NEW, Cluster, FakeSalt, FakeStaging, Leases, Records, driver_lib, plan_lib

#: The simulation's wall clock starts at 1_700_000_000: Tue 2023-11-14 22:13:20 UTC.
T0 = 1_700_000_000


class SlowestRng(random.Random):
    """Every simulated delay at its longest: each node takes the same, known time (about 8.5 s)."""

    def uniform(self, a, b):
        return b


class SavedStatuses(Records):
    """The records, and every status (with its summary) as saved."""

    def __init__(self, cluster):
        super().__init__(cluster)
        self.history = []

    def save(self, record):
        super().save(record)
        self.history.append(plan_lib.summary(record))

    save_node = lambda self, record, minion: self.save(record)  # noqa: E731
    save_changes = lambda self, record, nodes=(), groups=(): self.save(record)  # noqa: E731


def run(options, clock_offset=0.0, cluster=None, names=("node1", "node2", "node3")):
    cluster = cluster or Cluster(SlowestRng(1), list(names), faults=False)
    records, out = SavedStatuses(cluster), io.StringIO()
    salt = FakeSalt(cluster)
    records.salt = salt
    args = copy.deepcopy(simulation.ARGS)
    args["options"].update(options)
    driver = driver_lib.Driver(
        salt,
        records,
        Leases(),
        args,
        staging=FakeStaging(cluster),
        progress=True,
        out=out,
        identity={"pid": 1, "host": "master"},
        clock=lambda: salt.time() + clock_offset,
    )
    result = driver.start("r1")
    return result, records, out.getvalue(), cluster


def log_index(record, text):
    """Index of the first log entry that contains ``text``."""
    return next(i for i, entry in enumerate(record["log"]) if text in entry["message"])


def test_a_window_that_closes_between_nodes_holds_the_next_node_until_it_opens():
    # Open until 22:15:00, closed until 22:17:00 (UTC). The driver's clock reads 22:14:45 at the start: node1
    # (expected: node_timeout, 10 s) fits; it takes about 8.5 s, so node2 (expected min(10, 1.5 x 8.5) s) would
    # not be back before 22:15:00: it waits for 22:17:00, then goes on by itself, as does node3.
    offset = (T0 + 100 - 15) - T0
    reopens = T0 + 100 + 120
    result, records, out, cluster = run(
        {"window": "Tue 22:00-22:15; Tue 22:17-23:00", "window_tz": "UTC", "node_timeout": 10}, offset
    )
    assert result["status"] == plan_lib.DONE, (result, out)
    assert all(node.version == NEW and node.installs == 1 for node in cluster.nodes.values())
    record = records.load("r1")
    nodes = record["nodes"]
    assert nodes["node1"]["started"] + offset < T0 + 100 - 10
    # node2 started only when the window had opened again (by the driver's clock), node3 right after it.
    assert nodes["node2"]["started"] + offset >= reopens
    assert nodes["node3"]["started"] >= nodes["node2"]["finished"]
    waited = log_index(record, "waiting: ")
    assert log_index(record, "node1: active on") < waited < log_index(record, "node2: stopping")
    assert record["log"][waited + 1]["message"] == "resumed"
    assert "goes on by itself at Tue 2023-11-14 22:17 UTC" in record["log"][waited]["message"]
    assert "before node2 (expected 10 s) would be done" in record["log"][waited]["message"]
    # Meanwhile its status said so, and when it goes on.
    waiting = [s for s in records.history if s["status"] == plan_lib.WAITING]
    assert waiting and {s["resume_at"] for s in waiting} == {reopens}
    assert all("goes on by itself" in s["reason"] for s in waiting)
    assert "waiting: the maintenance window Tue 22:00-22:15; Tue 22:17-23:00 (UTC) closes at" in out
    assert "is open: going on" in out


def test_a_rollout_started_outside_its_window_waits_from_the_start():
    # 22:13:20 UTC: the window opens at 22:30.
    result, records, out, cluster = run({"window": "daily 22:30-23:30", "window_tz": "UTC"})
    assert result["status"] == plan_lib.DONE, (result, out)
    record = records.load("r1")
    first = min(node["started"] for node in record["nodes"].values())
    assert first >= T0 + 1000  # 22:30:00
    assert records.history[[s["status"] for s in records.history].index(plan_lib.WAITING)]["counts"] == {"pending": 3}
    assert "outside the maintenance window daily 22:30-23:30 (UTC); goes on by itself at Tue 2023-11-14 22:30" in out


def test_no_opening_long_enough_halts_with_the_reason():
    result, records, out, cluster = run({"window": "daily 22:30-22:31", "window_tz": "UTC", "node_timeout": 600})
    assert result["status"] == plan_lib.HALTED
    assert "no opening in the next two weeks is long enough for node1" in result["reason"]
    assert not any(node.installs or node.down for node in cluster.nodes.values())


def test_resume_keeps_the_window():
    record = {
        "id": "r",
        "status": plan_lib.WAITING,
        "reason": "x",
        "resume_at": 5,
        "canary": {"released": False},
        "nodes": {},
        "order": [],
        "groups": {},
        "frontend": None,
        "log": [],
        "options": {"window": "daily 01:00-02:00"},
    }
    plan_lib.resume(record, 1)
    assert record["status"] == plan_lib.RUNNING and "resume_at" not in record
    assert record["canary"]["released"] is False  # only a paused canary is released by a resume
    assert record["options"]["window"] == "daily 01:00-02:00"


class NeverActive(Cluster):
    """``stuck`` stops its services and never comes back (the simulator's never-active fault)."""

    stuck = "node1"

    def proceed(self, node, job):
        if node.name != self.stuck:
            return super().proceed(node, job)
        job.listening, job.changing = False, True
        self.go_down(node)
        for delay, phase in ((0.5, "stopping"), (1, "installing"), (2, "waiting")):
            self.emit(
                simulation.protocol.NODE_PHASE,
                {"id": node.name, "data": simulation.protocol.phase_event(phase, NEW)},
                delay,
            )
        return None


def test_a_long_wait_says_every_half_minute_how_long_and_what_the_node_says():
    cluster = NeverActive(SlowestRng(1), ["node1", "node2"], faults=False)
    result, records, out, _ = run({"node_timeout": 100}, cluster=cluster, names=None)
    assert result["status"] == plan_lib.HALTED and result["nodes"]["node1"]["phase"] == plan_lib.FAILED
    notes = [line for line in out.splitlines() if "of the 100 s allowed (node_timeout)" in line]
    # At about 30, 60 and 90 s in flight (the driver looks between two reads of the bus, at most 5 s apart);
    # then the timeout at 100 s halts it.
    waited = [int(line.split("node1: waiting for ")[1].split(" s")[0]) for line in notes]
    assert len(waited) == 3 and all(30 * n <= w <= 30 * n + 6 for n, w in enumerate(waited, 1)), out
    assert all("the node says: inactive, installed 5.25.2, running None" in line for line in notes)
    assert out.index(notes[-1]) < out.index("node1 FAILED: not active within 100 s")
    # rolling.status showed the same while it waited (the driver's last look, kept on the node).
    shown = [s["nodes"]["node1"]["evidence"] for s in records.history if "evidence" in s["nodes"].get("node1", {})]
    assert [e["note"] for e in shown] == [line.split("] ", 1)[1] for line in notes]
    # Not after it failed: the note was about the wait.
    assert "evidence" not in records.history[-1]["nodes"]["node1"]
    assert "node2 (" not in out  # no further node was touched


def test_a_node_that_does_not_answer_the_look_is_said_so():
    cluster = NeverActive(SlowestRng(1), ["node1"], faults=False)
    # Every expressware.node_state published (the long wait's look, and the health gate's looks, which the fake
    # adapter sends to look()) is published but never answered.
    cluster.look = lambda minions: cluster.new_jid()
    result, records, out, _ = run({"node_timeout": 50}, cluster=cluster, names=None)
    notes = [line for line in out.splitlines() if "of the 50 s allowed" in line]
    assert notes and all("the node did not answer (rebooting?)" in line for line in notes), out
    # Asked at about 30 s, given up on 10 s later.
    assert 40 <= int(notes[0].split("node1: waiting for ")[1].split(" s")[0]) <= 46, notes


# -- the runner's window arguments ----------------------------------------------------------------------------

runner = simulation.runner


def _given(**extra):
    given = runner._update_defaults()  # pylint: disable=protected-access
    given.update(tgt="*", version=NEW, sia="salt://x.sh")
    given.update(extra)
    return given


def test_window_arguments_are_checked_and_kept_in_the_options(monkeypatch):
    check = runner._check_args  # pylint: disable=protected-access
    options = check(_given(window="Sat-Sun 01:00-05:00", window_tz="Europe/Oslo"))["options"]
    assert (options["window"], options["window_tz"]) == ("Sat-Sun 01:00-05:00", "Europe/Oslo")
    assert check(_given())["options"]["window"] is None
    for bad, says in (
        ({"window": "Sat-Sun 25:00-26:00"}, "window"),
        ({"window": "*", "window_tz": "Mars/Base"}, "unknown time zone"),
        ({"window_tz": "UTC"}, "window_tz needs a window"),
        ({"window": 5}, "window must be"),
    ):
        with pytest.raises(runner.SaltInvocationError, match=says):
            check(_given(**bad))
    # The cluster's default from the master configuration; an argument wins.
    monkeypatch.setattr(
        runner, "__opts__", {"expressware": {"window": {"db1": "daily 01:00-03:00"}, "window_tz": "UTC"}}, raising=False
    )
    options = check(_given(cluster="db1"))["options"]
    assert (options["window"], options["window_tz"]) == ("daily 01:00-03:00", "UTC")
    assert check(_given(cluster="db2"))["options"]["window"] is None
    assert check(_given(cluster="db1", window="*"))["options"]["window"] == "*"


def test_a_node_in_flight_when_the_driver_died_is_finished_outside_the_window():
    """A rollout resumed outside its window finishes the node a lost driver left in flight (it may be down), and
    only then waits."""
    cluster = Cluster(SlowestRng(1), ["node1", "node2"], faults=False)
    records = SavedStatuses(cluster)
    salt = FakeSalt(cluster)
    records.salt = salt
    args = copy.deepcopy(simulation.ARGS)
    args["options"].update(window="daily 22:00-23:00", window_tz="UTC", node_timeout=30)
    driver = driver_lib.Driver(
        salt,
        records,
        Leases(),
        args,
        staging=FakeStaging(cluster),
        identity={"pid": 1, "host": "master"},
    )
    # The first driver dies right after node1 began (its "stopping" saved).
    real_save = records.save

    def dying_save(record):
        real_save(record)
        if record["nodes"].get("node1", {}).get("phase") == plan_lib.STOPPING:
            salt.dead = True
            raise simulation.Crash()

    records.save, records.save_node = dying_save, lambda record, minion: dying_save(record)
    with pytest.raises(simulation.Crash):
        driver.start("r1")
    records.save, records.save_node = real_save, lambda record, minion: real_save(record)
    # Resumed an hour later, when the window is closed (until 22:00 tomorrow).
    salt2, out = FakeSalt(cluster), io.StringIO()
    records.salt = salt2
    late = driver_lib.Driver(
        salt2,
        records,
        Leases(),
        args,
        staging=FakeStaging(cluster),
        progress=True,
        out=out,
        identity={"pid": 2, "host": "master"},
        clock=lambda: salt2.time() + 3600,
    )
    record = records.load("r1")
    assert record["nodes"]["node1"]["phase"] == plan_lib.STOPPING
    abort_after = {"n": 0}

    def abort_requested(rollout_id):  # the operator aborts once node2 waits
        abort_after["n"] += records.load(rollout_id)["status"] == plan_lib.WAITING
        return abort_after["n"] > 2

    records.abort_requested = abort_requested
    result = late.resume(record, [], alive=False)
    assert result["status"] == plan_lib.ABORTED, out.getvalue()
    assert cluster.nodes["node1"].version == NEW and cluster.nodes["node1"].active
    assert cluster.nodes["node2"].installs == 0 and not cluster.nodes["node2"].down
    assert "waiting: outside the maintenance window daily 22:00-23:00 (UTC)" in out.getvalue()
    assert out.getvalue().index("node1: active on") < out.getvalue().index("waiting: outside")
