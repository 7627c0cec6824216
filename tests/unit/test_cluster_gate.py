"""The vendor's cluster view as a second gate (issue 11 item 2): ``cluster_states`` checked and kept, and the
driver's gate fed with the frontend's reports (a stub adapter: the Network Manager's reports are plain data)."""

import pytest

from tests.unit import simulation
from tests.unit.simulation import NEW

runner = simulation.runner
health_gate = simulation.driver_lib.health_gate


def _given(**extra):
    given = runner._update_defaults()  # pylint: disable=protected-access
    given.update(tgt="*", version=NEW, sia="salt://x.sh")
    given.update(extra)
    return given


def test_cluster_states_default_to_up_with_a_frontend_and_are_kept_in_the_args():
    check = runner._check_args  # pylint: disable=protected-access
    assert check(_given(frontend="fe"))["cluster_states"] == ["UP"]
    assert check(_given(frontend="fe", cluster_states="up,reduced"))["cluster_states"] == ["UP", "REDUCED"]
    assert check(_given(frontend="fe", cluster_states=["DEGRADED"]))["cluster_states"] == ["DEGRADED"]
    assert check(_given(frontend="fe", cluster_states="unchecked"))["cluster_states"] is None
    assert check(_given())["cluster_states"] is None  # no frontend: nothing reports


@pytest.mark.parametrize(
    "extra, says",
    [
        ({"frontend": "fe", "cluster_states": ["GREEN"]}, "cluster_states: unknown cluster state 'GREEN'"),
        ({"frontend": "fe", "cluster_states": []}, "cluster_states: allowed cluster states must be a list"),
        ({"frontend": "fe", "cluster_states": 5}, "cluster_states"),
        ({"cluster_states": ["DEGRADED"]}, "cluster_states needs frontend"),
    ],
)
def test_bad_cluster_states_are_refused_naming_the_argument(extra, says):
    with pytest.raises(runner.SaltInvocationError, match=says):
        runner._check_args(_given(**extra))  # pylint: disable=protected-access


class Stub(health_gate.HealthGate):
    """The parts of a driver the gate uses; the frontend's state file and the bus are plain data."""

    def __init__(self, report, cluster_states=("UP",), frontend="fe"):
        self.args = {
            "cluster": "default",
            "timeout": 5,
            "health_wait": 30,
            "cluster_states": list(cluster_states) if cluster_states else None,
            "options": {"frontend": frontend},
        }
        self.record, self.said, self.fired, self.halted = {"id": "r1", "health": {}}, [], [], None
        self.view, self.health_asks, self.now, self.report = None, {}, 1000.0, report
        self.events, self.published, self.published_at, self.notified, self.written = [], [], [], [], []
        self.salt, self.gates, self.rollouts = self, self, self
        self.resolve_members = lambda expr, cluster: []

    # the adapter
    def time(self):
        return self.now

    def monotonic(self):
        return self.now

    def call(self, tgt, fun, arg=(), kwarg=None, tgt_type="list", timeout=None):
        if fun == "expressware.cluster_state":
            return {tgt[0]: self.report}
        return {m: {"active": True, "reasons": []} for m in tgt}

    def publish(self, tgt, fun, arg=(), kwarg=None, tgt_type="list"):
        self.published.append((tuple(tgt), fun))
        self.published_at.append(self.now)
        jid = f"jid{len(self.published)}"
        if fun == "expressware.cluster_state":
            # The frontend answers with its state file, read 0.2 s later: the last report its Network Manager
            # notified by then (the script writes the file, then fires the event).
            read_at = self.now + 0.2
            notified = [
                (e[2], e[1]["data"])
                for e in self.events
                if e[0] == "expressware/cluster/state" and e[2] <= read_at and not e[1].get("forged")
            ]
            written = [(at, report) for at, report in self.written if at <= read_at]  # before its event was fired
            latest = max([(0, self.report)] + self.notified + notified + written, key=lambda pair: pair[0])[1]
            answer = {"id": tgt[0], "return": latest, "out": "nested"}
            self.events = sorted(self.events + [(f"salt/job/{jid}/ret/{tgt[0]}", answer, read_at)], key=lambda e: e[2])
        return jid

    def get_event(self, wait):
        self.now += wait
        if not (self.events and self.now >= self.events[0][2]):
            return None
        event = self.events.pop(0)
        if event[0] == "expressware/cluster/state" and event[1].get("id") == "fe" and not event[1].get("forged"):
            self.notified.append((event[2], event[1]["data"]))
        return event

    # the gates, the store, the driver
    def observe(self, tag, data, at=None):
        self.health_event(tag, data)

    def abort_requested(self, rollout):
        return False

    def say(self, message, record=True):
        self.said.append(message)

    def save(self):
        pass

    def fire(self, suffix, data):
        self.fired.append((suffix, data))

    def halt(self, reason=None):
        self.halted = reason


def _report(state, seq, at):
    return {"state": state, "node": "node1", "seq": seq, "time": int(at)}


def _cluster_event(state, seq, at):
    return ("expressware/cluster/state", {"id": "fe", "data": _report(state, seq, at)}, at)


def test_preflight_reads_the_frontends_report_and_refuses_a_state_not_allowed():
    driver = Stub(_report("UP", 3, 900))
    assert driver.preflight_health({"node1": {"node_state": {"active": True}}}, 1000.0) == []
    assert driver.view.frontend == "fe" and driver.view.cluster["state"] == "UP"
    driver = Stub(_report("DEGRADED", 3, 900))
    ((who, problem),) = driver.preflight_health({"node1": {"node_state": {"active": True}}}, 1000.0)
    assert who == "fe" and "the cluster is DEGRADED" in problem and "allowed: UP" in problem
    driver = Stub("ERROR: no cluster state on record (/x/state.json)")
    ((who, problem),) = driver.preflight_health({"node1": {"node_state": {"active": True}}}, 1000.0)
    assert who == "fe" and "no cluster state on record" in problem and "state.apply expressware.notify" in problem
    driver = Stub(_report("DEGRADED", 3, 900), cluster_states=("UP", "DEGRADED"))
    assert driver.preflight_health({"node1": {"node_state": {"active": True}}}, 1000.0) == []
    driver = Stub("ERROR: anything", cluster_states=None)  # unchecked: the frontend is not read
    assert driver.preflight_health({"node1": {"node_state": {"active": True}}}, 1000.0) == []
    assert driver.view.frontend is None


def _after_a_flight(events):
    driver = Stub(_report("UP", 1, 900))
    driver.preflight_health({m: {"node_state": {"active": True}} for m in ("node1", "node2")}, 1000.0)
    driver.view.begin("node1", 1001.0)
    driver.view.landed("node1", 1010.0)
    driver.now = 1010.0
    driver.events = list(events)
    return driver, driver.health_gate("node2")


def test_after_a_flight_the_gate_waits_for_a_fresh_up_report():
    driver, went = _after_a_flight([_cluster_event("DEGRADED", 2, 1011), _cluster_event("UP", 3, 1012.5)])
    assert went is True and driver.halted is None
    assert driver.now >= 1012.5  # not before the frontend said UP again
    assert driver.record["health"]["gate_s"]["node2"] == pytest.approx(driver.now - 1010.0)  # the gate's own cost
    held = [data for suffix, data in driver.fired if suffix == "held"]
    # Said again when the frontend's word changes: first no report since the flight, then DEGRADED.
    assert [(h["who"], h["minion"], h["cluster"]["state"]) for h in held] == [
        (["fe"], "node2", "UP"),
        (["fe"], "node2", "DEGRADED"),
    ], held
    assert "not reported the cluster state since" in held[0]["why"] and "DEGRADED" in held[1]["why"]


def test_an_up_fired_by_another_minion_in_the_frontends_name_does_not_end_the_hold():
    """A minion fires ``expressware/cluster/state`` in the batched form (data it writes: ``id`` fe, UP, a later time)
    while the Network Manager reported DEGRADED: the gate reads the frontend's state file at once, keeps holding on
    its DEGRADED and halts after health_wait; node2 is never released."""
    forged = ("expressware/cluster/state", {"id": "fe", "data": _report("UP", 9, 1013), "forged": True}, 1013)
    driver, went = _after_a_flight([_cluster_event("DEGRADED", 2, 1011), forged])
    assert went is False and "DEGRADED" in driver.halted
    assert driver.view.cluster["state"] == "DEGRADED" and driver.view.cluster["source"] == "answer"
    # The file was read right after the forged report arrived, not HEALTH_ASK seconds later.
    reads = [t for e, t in zip(driver.published, driver.published_at) if e == (("fe",), "expressware.cluster_state")]
    assert any(1013 <= t < 1013.5 for t in reads), reads
    assert driver.record["health"]["halted"]["who"] == ["fe"]


def test_right_after_a_flight_the_state_file_is_read_often_and_the_up_written_there_ends_the_hold():
    """The notification script writes the report to its state file, then its salt-call (a second or more) fires
    the event: in the first seconds of the gate the file is read every CLUSTER_POLL seconds, and the UP found there
    lets the next node go before the event arrives."""
    up = _report("UP", 2, 1010)
    driver = Stub(_report("UP", 1, 900))
    driver.preflight_health({m: {"node_state": {"active": True}} for m in ("node1", "node2")}, 1000.0)
    driver.view.begin("node1", 1001.0)
    driver.view.landed("node1", 1010.0)
    driver.now, driver.written = 1010.0, [(1010.9, up)]
    driver.events = [("expressware/cluster/state", {"id": "fe", "data": up}, 1013.0)]
    assert driver.health_gate("node2") is True and driver.halted is None
    assert driver.now < 1012.0, driver.now  # the file's UP, read within about CLUSTER_POLL of its writing
    reads = [t for e, t in zip(driver.published, driver.published_at) if e == (("fe",), "expressware.cluster_state")]
    assert len(reads) >= 2 and all(b - a >= health_gate.CLUSTER_POLL - 0.02 for a, b in zip(reads, reads[1:]))


def test_degraded_holds_naming_the_frontend_and_the_state_and_halts_after_health_wait():
    driver, went = _after_a_flight([_cluster_event("DEGRADED", 2, 1011)])
    assert went is False and "cluster health" in driver.halted and "DEGRADED" in driver.halted
    held = [data for suffix, data in driver.fired if suffix == "held"]
    assert held[-1]["who"] == ["fe"] and held[-1]["cluster"]["state"] == "DEGRADED", held
    assert driver.record["health"]["halted"]["who"] == ["fe"]
    # While held, the frontend's state file was read again every HEALTH_ASK seconds (an event may be lost).
    asks = [p for p in driver.published if p == (("fe",), "expressware.cluster_state")]
    assert len(asks) >= 30 // health_gate.HEALTH_ASK - 1, driver.published


def test_a_report_read_from_the_state_file_ends_the_hold_when_the_event_was_lost():
    driver = Stub(_report("UP", 1, 900))
    driver.preflight_health({m: {"node_state": {"active": True}} for m in ("node1", "node2")}, 1000.0)
    driver.view.begin("node1", 1001.0)
    driver.view.landed("node1", 1010.0)
    driver.now = 1010.0
    original = driver.publish

    def publish(tgt, fun, arg=(), kwarg=None, tgt_type="list"):
        jid = original(tgt, fun, arg, kwarg, tgt_type)
        # The frontend answers with its state file: UP, reported after the flight (its event never arrived).
        ret = {"id": "fe", "return": _report("UP", 4, 1009), "out": "nested"}
        driver.events.append((f"salt/job/{jid}/ret/fe", ret, driver.now + 0.5))
        return jid

    driver.publish = publish
    assert driver.health_gate("node2") is True and driver.halted is None


def test_the_gate_passed_again_for_the_same_node_asks_no_new_report():
    # do_update passes the gate again when the node's prepared job was not ready at once: the node's own flight
    # began at the first pass, and the frontend cannot have reported about it yet.
    driver = Stub(_report("UP", 1, 900))
    driver.preflight_health({m: {"node_state": {"active": True}} for m in ("node1", "node2")}, 1000.0)
    driver.now = 1000.5
    assert driver.health_gate("node1") is True
    driver.now += 1.0
    assert driver.health_gate("node1") is True and driver.fired == [] and driver.now == 1001.5
    driver.view.landed("node1", 1010.0)
    driver.now, driver.events = 1010.0, []
    assert driver.health_gate("node2") is False  # the next node: a report after node1's flight is needed
