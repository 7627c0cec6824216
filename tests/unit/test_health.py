"""The cluster health gate (``_utils/expressware_health.py``) as plain data, without daemons.

Events are built as the master's bus carries them: a beacon's data holds ``id`` and
``node_state``; an ``event.send`` from a minion holds ``id`` (verified by the master)
and ``data``; the frontend's cluster state is an ``event.send`` of the notification
script.
"""

import json

import pytest

from tests.shared_code import load

health = load("expressware_health")

MEMBERS = ("node1", "node2", "node3")
FRONTEND = "fe1"
ACTIVE_STATE = {"state": "active", "active": True, "reasons": []}
DOWN_STATE = {"state": "inactive", "active": False, "reasons": ["services not running: Node Manager, IRM driver"]}


def beacon(minion, state, node_state=None, claimed_id=None):
    node_state = node_state or (ACTIVE_STATE if state == "active" else DOWN_STATE)
    return (
        f"salt/beacon/{minion}/expressware/{state}",
        {"id": claimed_id or minion, "node_state": node_state, "previous": None},
    )


def node_event(sender, state, node_state=None):
    node_state = node_state or (ACTIVE_STATE if state == "active" else DOWN_STATE)
    return f"expressware/node/{state}", {"id": sender, "data": {"node_state": node_state}}


def cluster_event(state, sender=FRONTEND, node=None, seq=None, time=None):
    data = {"state": state}
    data.update({k: v for k, v in (("node", node), ("seq", seq), ("time", time)) if v is not None})
    return health.TAG_CLUSTER_STATE, {"id": sender, "data": data}


def healthy(frontend=None, members=MEMBERS, now=10.0, health_wait=60, **kwargs):
    """A view whose members all answered active at ``now`` (and the frontend UP)."""
    view = health.ClusterView(members, frontend=frontend, health_wait=health_wait, **kwargs)
    for minion in members:
        assert view.answer(minion, ACTIVE_STATE, now) == (True, None)
    if frontend:
        assert view.event(*cluster_event("UP", seq=1, time=1000), now) == (True, None)
        assert view.cluster_answer({"state": "UP", "seq": 1, "time": 1000}, now) == (True, None)  # confirmed
    return view


def test_a_healthy_cluster_goes():
    view = healthy()
    assert view.verdict(11.0) == {
        "verdict": "go",
        "who": [],
        "why": None,
        "since": None,
        "waited": 0.0,
        "problems": [],
        "ask": [],
    }


def test_members_never_heard_from_hold():
    view = health.ClusterView(MEMBERS)
    verdict = view.verdict(1.0)
    assert verdict["verdict"] == "hold"
    assert verdict["who"] == list(MEMBERS) and verdict["ask"] == list(MEMBERS)
    assert "node1's state is unknown (not heard from yet)" in verdict["why"]


def test_members_are_the_targeted_nodes_plus_the_named_ones():
    assert health.cluster_members(["node2", "node1"], ["node3", "node1"]) == ["node1", "node2", "node3"]
    for bad in ([], [""], [" node1"], [None], [3]):
        with pytest.raises(health.HealthError):
            health.cluster_members(bad)


@pytest.mark.parametrize("event", [beacon("node3", "inactive"), node_event("node3", "inactive")])
def test_a_member_that_goes_inactive_holds_the_next_disruption(event):
    view = healthy()
    assert view.event(*event, 20.0) == (True, None)
    verdict = view.verdict(21.0, disrupting="node2")
    assert verdict["verdict"] == "hold" and verdict["who"] == ["node3"] and verdict["ask"] == ["node3"]
    assert verdict["since"] == 21.0 and verdict["waited"] == 0.0
    assert "node3 is inactive (services not running: Node Manager, IRM driver)" in verdict["why"]
    assert verdict["problems"][0]["since"] == 20.0  # when it went, not when it was asked about


def test_the_hold_ends_when_the_member_is_confirmed_back():
    view = healthy()
    view.event(*beacon("node3", "inactive"), 20.0)
    assert view.verdict(21.0)["verdict"] == "hold"
    view.answer("node3", ACTIVE_STATE, 30.0)
    assert view.verdict(31.0)["verdict"] == "go"
    # A later hold starts its own clock.
    view.event(*node_event("node1", "inactive"), 40.0)
    assert view.verdict(45.0)["since"] == 45.0


@pytest.mark.parametrize("back", [beacon("node3", "active"), node_event("node3", "active")])
def test_an_events_active_alone_is_confirmed_by_a_direct_look(back):
    """Nothing on the bus proves its sender (a batched minion event carries any ``id``; the master does not check a
    beacon's tag): an event's "active", the node's own ``expressware/node/active`` too, ends no hold by itself."""
    view = healthy()
    view.event(*beacon("node3", "inactive"), 20.0)
    assert view.event(*back, 25.0) == (True, None)
    verdict = view.verdict(26.0)
    assert verdict["verdict"] == "hold" and verdict["ask"] == ["node3"]
    assert verdict["problems"][0]["what"] == "unconfirmed" and "by an event on the bus only" in verdict["why"]
    view.answer("node3", ACTIVE_STATE, 27.0)
    assert view.verdict(28.0)["verdict"] == "go"


def test_another_minion_saying_on_the_bus_that_a_down_member_is_back_lets_nothing_be_disrupted():
    """node1 fires, in the batched form of a minion event, an ``expressware/node/active`` whose data names node3 (and
    a beacon's, under node3's tag) while node3 is down: the gate holds and asks node3, whose own answer decides."""
    view = healthy()
    view.event(*node_event("node3", "inactive"), 20.0)
    view.event(*node_event("node3", "active"), 21.0)  # data written by node1: {"id": "node3", ...}
    view.event(*beacon("node3", "active"), 22.0)
    verdict = view.verdict(23.0, disrupting="node2")
    assert verdict["verdict"] == "hold" and verdict["who"] == ["node3"] and verdict["ask"] == ["node3"]
    view.answer("node3", DOWN_STATE, 24.0)  # node3 itself, asked directly
    verdict = view.verdict(25.0, disrupting="node2")
    assert verdict["verdict"] == "hold" and verdict["problems"][0]["what"] == "inactive"
    assert view.down() == ["node3"]


def test_hold_turns_into_halt_after_health_wait_with_the_evidence():
    view = healthy(health_wait=30)
    view.event(*node_event("node3", "inactive"), 20.0)
    assert view.verdict(21.0)["verdict"] == "hold"
    assert view.verdict(50.9)["verdict"] == "hold"
    verdict = view.verdict(51.0)
    assert verdict["verdict"] == "halt" and verdict["who"] == ["node3"] and verdict["waited"] == 30.0
    assert verdict["problems"][0]["reasons"] == DOWN_STATE["reasons"]
    assert verdict["problems"][0]["source"] == "node event"
    json.dumps(verdict)  # the record and the halted event carry it


def test_health_wait_zero_halts_at_once():
    view = healthy(health_wait=0)
    view.event(*beacon("node2", "inactive"), 20.0)
    assert view.verdict(20.0)["verdict"] == "halt"


@pytest.mark.parametrize("bad", [-1, "soon", True, None, 10**9])
def test_bad_health_wait_is_refused(bad):
    with pytest.raises(health.HealthError, match="health_wait"):
        health.ClusterView(MEMBERS, health_wait=bad)


def test_the_node_in_flight_does_not_count_and_an_updated_node_that_fails_later_does():
    view = healthy()
    view.begin("node1", 20.0)
    view.event(*beacon("node1", "inactive"), 21.0)  # its own stop: deliberate
    assert view.verdict(22.0, disrupting="node1")["verdict"] == "go"
    # Nobody else may be disrupted meanwhile.
    verdict = view.verdict(22.0, disrupting="node2")
    assert verdict["verdict"] == "hold" and verdict["who"] == ["node1"]
    assert verdict["problems"][0]["what"] == "in flight"
    view.landed("node1", 30.0, ACTIVE_STATE)
    assert view.verdict(31.0, disrupting="node2")["verdict"] == "go"
    view.begin("node2", 32.0)
    # The updated node1 fails again on its own while node2 is in flight.
    view.event(*beacon("node1", "inactive"), 33.0)
    view.landed("node2", 40.0)
    verdict = view.verdict(41.0, disrupting="node3")
    assert verdict["verdict"] == "hold" and verdict["who"] == ["node1"]
    assert view.down() == ["node1"]


def test_a_flight_event_that_arrives_after_the_landing_is_stale():
    view = healthy()
    view.begin("node1", 20.0)
    view.landed("node1", 30.0)
    # The beacon saw the stop (fired at 25) but its event is taken up only now.
    assert view.event(*beacon("node1", "inactive"), 25.0)[0] is False
    assert view.verdict(31.0)["verdict"] == "go"


def test_an_answer_asked_before_an_event_arrived_does_not_override_it():
    view = healthy()
    view.event(*beacon("node3", "inactive"), 20.0)
    # Asked at 19 (before the event was fired), answered now: older news.
    taken, note = view.answer("node3", ACTIVE_STATE, 19.0)
    assert taken is False and "stale" in note
    assert view.verdict(21.0)["verdict"] == "hold"


def test_a_member_that_does_not_answer_is_unknown_and_holds():
    view = healthy()
    view.answer("node2", False, 20.0)
    verdict = view.verdict(21.0)
    assert verdict["who"] == ["node2"] and "did not answer" in verdict["why"]
    view.answer("node2", "Minion did not return", 22.0)
    assert "no node state: Minion did not return" in view.verdict(23.0)["why"]


@pytest.mark.parametrize(
    "event, note",
    [
        (node_event("node9", "inactive"), "not a member"),
        (beacon("node9", "inactive"), "not a member"),
        # node1 sends a beacon-shaped event naming node3: the tag and the data disagree.
        (beacon("node3", "inactive", claimed_id="node1"), "carries id 'node1'"),
        # A node event names its sender only: node1 cannot speak for node3.
        (("expressware/node/inactive", {"id": "node1", "data": {"node_state": DOWN_STATE, "id": "node3"}}), None),
        # The tag and the node state it carries disagree.
        (node_event("node3", "active", DOWN_STATE), "carries a node state that says otherwise"),
        (("salt/beacon/node3/other/inactive", {"id": "node3"}), "not a health event"),
        (("expressware/rolling/r1/start", {"id": "node3"}), "not a health event"),
    ],
)
def test_events_naming_a_member_must_come_from_it(event, note):
    view = healthy()
    taken, why = view.event(*event, 20.0)
    assert view.nodes["node3"]["state"] == "active"
    if note is None:
        # Taken as node1's own word (node1 down), never as node3's.
        assert taken and view.nodes["node1"]["state"] == "inactive"
    else:
        assert taken is False and note in why


def test_cluster_state_only_from_the_configured_frontend():
    view = healthy(frontend=FRONTEND)
    taken, why = view.event(*cluster_event("FAILED", sender="node2", seq=2), 20.0)
    assert taken is False and "not from the frontend fe1" in why
    assert view.verdict(21.0)["verdict"] == "go"
    no_frontend = healthy()
    assert no_frontend.event(*cluster_event("FAILED"), 20.0) == (False, "no frontend is configured")


@pytest.mark.parametrize(
    "payload",
    [
        {"state": "SIDEWAYS"},
        {"state": "up"},
        {},
        {"state": "UP", "seq": -1},
        {"state": "UP", "seq": "7"},
        {"state": "UP", "node": 5},
        "UP",
    ],
)
def test_a_malformed_cluster_report_is_ignored(payload):
    view = healthy(frontend=FRONTEND)
    taken, _ = view.event(health.TAG_CLUSTER_STATE, {"id": FRONTEND, "data": payload}, 20.0)
    assert taken is False and view.cluster["state"] == "UP"


def test_the_cluster_must_be_in_an_allowed_state():
    view = healthy(frontend=FRONTEND)
    view.event(*cluster_event("DEGRADED", node="node2", seq=2, time=1001), 20.0)
    verdict = view.verdict(21.0)
    assert verdict["verdict"] == "hold" and verdict["who"] == [FRONTEND] and verdict["ask"] == []
    assert "the cluster is DEGRADED (allowed: UP), reported about node2" in verdict["why"]
    # An allowed state said on the bus only is read from the frontend first.
    assert "by an event on the bus only" in view.verdict(22.0, allowed=["UP", "DEGRADED"])["why"]
    view.cluster_answer({"state": "DEGRADED", "node": "node2", "seq": 2, "time": 1001}, 22.5)
    assert view.verdict(22.0, allowed=["UP", "DEGRADED"])["verdict"] == "go"
    assert view.verdict(22.0, allowed="UP, degraded")["verdict"] == "go"
    view.event(*cluster_event("UP", seq=3, time=1002), 30.0)
    assert view.verdict(31.0)["verdict"] == "hold"
    view.cluster_answer({"state": "UP", "seq": 3, "time": 1002}, 31.5)
    assert view.verdict(32.0)["verdict"] == "go"


@pytest.mark.parametrize("bad", [["SIDEWAYS"], [], "", [None], 3])
def test_bad_allowed_states_are_refused(bad):
    with pytest.raises(health.HealthError):
        health.allowed_states(bad)


def test_after_a_flight_the_frontend_must_report_again():
    """The node's own stop takes the cluster out of UP; the UP from before the flight does not count."""
    view = healthy(frontend=FRONTEND)
    view.begin("node1", 20.0)
    view.landed("node1", 25.0)  # back before the Network Manager's notifications arrived
    verdict = view.verdict(25.0, disrupting="node2")
    assert verdict["verdict"] == "hold" and "has not reported the cluster state since" in verdict["why"]
    view.event(*cluster_event("REDUCED", node="node1", seq=2, time=1003), 26.0)
    assert "the cluster is REDUCED" in view.verdict(26.0, disrupting="node2")["why"]
    view.event(*cluster_event("UP", node="node1", seq=3, time=1004), 27.0)
    assert view.verdict(27.0, disrupting="node2")["verdict"] == "hold"  # read from the frontend first
    assert view.cluster_answer({"state": "UP", "node": "node1", "seq": 3, "time": 1004}, 27.5) == (True, None)
    assert view.verdict(28.0, disrupting="node2")["verdict"] == "go"


def test_without_cluster_after_flight_the_standing_state_counts():
    view = healthy(frontend=FRONTEND, cluster_after_flight=False)
    view.begin("node1", 20.0)
    view.landed("node1", 25.0)
    assert view.verdict(25.0, disrupting="node2")["verdict"] == "go"


def test_cluster_reports_that_overtake_each_other_are_ordered_by_the_frontend():
    """Two runs of the notification script at once: REDUCED (#2) arrives after UP (#3)."""
    view = healthy(frontend=FRONTEND)
    view.begin("node1", 20.0)
    view.landed("node1", 25.0)
    assert view.event(*cluster_event("UP", seq=3, time=1004), 26.0) == (True, None)
    taken, why = view.event(*cluster_event("REDUCED", seq=2, time=1004), 26.5)
    assert taken is False and "stale" in why
    view.cluster_answer({"state": "UP", "seq": 3, "time": 1004}, 27.0)
    assert view.verdict(27.0)["verdict"] == "go"
    # A later second of the frontend's clock wins even when its counter restarted (state file lost).
    assert view.event(*cluster_event("FAILED", seq=1, time=1010), 30.0) == (True, None)
    assert view.verdict(31.0)["verdict"] == "hold"


def test_cluster_reports_without_order_are_taken_as_they_arrive():
    view = healthy(frontend=FRONTEND)
    view.event(*cluster_event("DEGRADED"), 20.0)  # no seq, no time
    assert view.cluster["state"] == "DEGRADED"
    taken, _ = view.event(*cluster_event("UP"), 19.0)  # fired before the one known
    assert taken is False and view.cluster["state"] == "DEGRADED"


def test_a_direct_read_of_the_frontends_state_file():
    view = health.ClusterView(MEMBERS, frontend=FRONTEND)
    for minion in MEMBERS:
        view.answer(minion, ACTIVE_STATE, 5.0)
    assert "has not reported the cluster state" in view.verdict(6.0)["why"]
    assert view.cluster_answer({"state": "UP", "node": None, "seq": 4, "time": 990}, 7.0) == (True, None)
    assert view.verdict(8.0)["verdict"] == "go"
    # The same report read again after a flight says nothing new: the Network Manager has not reported since.
    view.begin("node1", 10.0)
    view.landed("node1", 15.0)
    view.cluster_answer({"state": "UP", "seq": 4, "time": 990}, 16.0)
    assert "since the last node was disrupted" in view.verdict(16.0)["why"]
    assert view.cluster_answer({"state": "UP", "seq": 6, "time": 1020}, 17.0) == (True, None)
    assert view.verdict(17.0)["verdict"] == "go"
    assert view.cluster_answer({"state": "BAD"}, 18.0)[0] is False


def test_a_state_file_read_first_after_a_flight_began_does_not_count_as_fresh():
    view = health.ClusterView(MEMBERS, frontend=FRONTEND)
    for minion in MEMBERS:
        view.answer(minion, ACTIVE_STATE, 5.0)
    view.begin("node1", 10.0)
    view.landed("node1", 15.0)
    view.cluster_answer({"state": "UP", "seq": 4}, 16.0)
    assert "since the last node was disrupted" in view.verdict(16.0)["why"]


def test_a_full_rollout_in_event_order_with_an_outside_failure():
    """node1 is updated; node3 fails on its own meanwhile and comes back; node2 waits for it."""
    view = healthy(frontend=FRONTEND, health_wait=100)
    now = 20.0
    assert view.verdict(now, disrupting="node1")["verdict"] == "go"
    view.begin("node1", now)
    feed = [
        (beacon("node1", "inactive"), 21.0),
        (cluster_event("REDUCED", node="node1", seq=2, time=1021), 21.5),
        (beacon("node3", "inactive"), 22.0),  # outside failure
        (cluster_event("FAILED", node="node3", seq=3, time=1022), 22.5),
        (node_event("node1", "active"), 25.0),
    ]
    for event, at in feed:
        assert view.event(*event, at) == (True, None)
    view.landed("node1", 25.0)
    held = view.verdict(25.0, disrupting="node2")
    assert held["verdict"] == "hold" and held["who"] == ["node3", FRONTEND]
    for event, at in [(beacon("node3", "active"), 40.0), (cluster_event("UP", node="node3", seq=4, time=1040), 41.0)]:
        view.event(*event, at)
    assert view.verdict(41.0, disrupting="node2")["ask"] == ["node3"]  # the beacon alone: to be confirmed
    view.answer("node3", ACTIVE_STATE, 41.5)
    held = view.verdict(42.0, disrupting="node2")  # the frontend's UP, an event only: read from it
    assert held["verdict"] == "hold" and held["who"] == [FRONTEND] and held["problems"][0]["unconfirmed"]
    view.cluster_answer({"state": "UP", "node": "node3", "seq": 4, "time": 1040}, 42.5)
    assert view.verdict(43.0, disrupting="node2")["verdict"] == "go"


def test_a_frontends_up_said_on_the_bus_by_another_minion_gives_way_to_the_frontends_own_file():
    """A minion fires the frontend's cluster-state event in the batched form (data it writes: ``id`` fe1, UP, a
    late time and a high seq) while the Network Manager reported DEGRADED: the gate holds and reads the frontend's
    state file, whose report replaces the one said on the bus, newer or not; a read asked before that event
    arrived is older news and does not."""
    view = healthy(frontend=FRONTEND)
    view.event(*cluster_event("DEGRADED", node="node3", seq=2, time=1001), 20.0)
    view.cluster_answer({"state": "DEGRADED", "node": "node3", "seq": 2, "time": 1001}, 20.5)
    view.event(*cluster_event("UP", seq=99, time=5000), 21.0)  # not from fe1
    held = view.verdict(22.0)
    assert held["verdict"] == "hold" and held["who"] == [FRONTEND] and "by an event on the bus only" in held["why"]
    assert view.cluster_answer({"state": "DEGRADED", "node": "node3", "seq": 2, "time": 1001}, 20.8)[0] is False
    assert view.cluster_answer({"state": "DEGRADED", "node": "node3", "seq": 2, "time": 1001}, 21.5) == (True, None)
    held = view.verdict(23.0)
    assert held["verdict"] == "hold" and "the cluster is DEGRADED" in held["why"] and view.cluster["confirmed"]


def test_begin_and_landed_refuse_what_does_not_fit():
    view = healthy()
    with pytest.raises(health.HealthError, match="not a member"):
        view.begin("node9", 1.0)
    view.begin("node1", 1.0)
    with pytest.raises(health.HealthError, match="node1 is in flight"):
        view.begin("node2", 2.0)
    with pytest.raises(health.HealthError, match="node2 is not in flight"):
        view.landed("node2", 3.0)


def test_the_view_survives_a_round_trip_through_json():
    view = healthy(frontend=FRONTEND)
    view.begin("node1", 20.0)
    view.event(*beacon("node3", "inactive"), 21.0)
    first = view.verdict(22.0, disrupting="node2")
    saved = json.loads(json.dumps(view.to_dict()))
    again = health.ClusterView.from_dict(saved)
    assert again.verdict(23.0, disrupting="node2") == dict(first, waited=1.0)
    with pytest.raises(health.HealthError):
        health.ClusterView.from_dict({"format": 99})


def test_stamp_time_reads_the_masters_stamp():
    assert health.stamp_time({"_stamp": "2026-12-01T15:09:16.500000"}, 0.0) == 1796137756.5
    assert health.stamp_time({"_stamp": "garbage"}, 7.0) == 7.0
    assert health.stamp_time({}, 7.0) == 7.0
