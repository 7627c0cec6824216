"""What a node's events mean while the runner waits for it (``expressware_watch``), from recorded event sequences.

The same sequences the integration tests provoke on real daemons (``test_faults.py``): a minion restarted during
its update, a job lost with it, the beacon's word first, an event after the job's return, a timeout; and events
that must not count: another minion's, or one naming a minion it does not come from.
"""

import pytest

from tests.shared_code import load

runner = load("rolling", "_runners")
watch = load("expressware_watch")
protocol = runner.protocol

NODE, JID, PROBE_JID = "node2", "20261201120000000001", "20261201120000000002"
ACTIVE_STATE = {"state": "active", "active": True, "installed": "5.26.0", "running": "5.26.0", "reasons": []}


def phase(phase_name, minion=NODE, gate=None):
    return protocol.NODE_PHASE, {"id": minion, "data": protocol.phase_event(phase_name, "5.26.0", gate=gate)}


def active(minion=NODE, state=ACTIVE_STATE):
    return protocol.NODE_ACTIVE, {"id": minion, "data": protocol.node_event(state)}


def ret(jid=JID, minion=NODE, result=True, comment="ok"):
    return protocol.job_return_tag(jid, minion), {
        "id": minion,
        "return": {"expressware_|-x_|-5.26.0_|-installed": {"result": result, "comment": comment}},
    }


def beacon(state, minion=NODE, data_id=None):
    return protocol.beacon_tag(minion, state), {"id": data_id or minion, "tag": state}


def restart(minion=NODE):
    return protocol.minion_start_tag(minion), {"id": minion}


def probe_ret(active_now=True, jid=PROBE_JID, minion=NODE):
    return protocol.job_return_tag(jid, minion), {"id": minion, "return": {"active": active_now}}


def run(events, resumed=False, deadline=100.0, probe=PROBE_JID):
    """Feed ``events`` (``(tag, data)``, or a number: that many seconds pass with none) to a NodeWatch;
    the steps, in order, until it finished."""
    node = watch.NodeWatch(NODE, JID, deadline, 60, resumed=resumed)
    steps, now = [], 0.0
    for event in events:
        if isinstance(event, (int, float)):
            now += event
            new = node.observe(None, None, now)
        else:
            now += 0.1
            new = node.observe(*event, now)
        for step in new:
            if step.kind == watch.PROBE:
                node.probing(probe)
        steps.extend(new)
        if node.finished is not None:
            break
    return [(s.kind, s.value) for s in steps], node


def test_an_ordinary_update():
    steps, _ = run([phase("stopping"), phase("installing"), phase("waiting"), active(), ret()])
    assert steps == [
        ("phase", "stopping"),
        ("phase", "installing"),
        ("prepare", None),
        ("phase", "waiting"),
        ("done", ACTIVE_STATE),
    ]


def test_the_return_before_the_active_event_waits_for_it():
    steps, node = run([phase("waiting"), ret()])
    assert node.finished is None and steps == [("phase", "waiting")]
    steps, _ = run([phase("waiting"), ret(), active()])
    assert steps[-1] == ("done", ACTIVE_STATE)


def test_a_failed_job_fails_the_node_at_once():
    steps, _ = run([phase("stopping"), ret(result=False, comment="the installer failed")])
    assert steps[-1] == ("failed", "the installer failed")


def test_a_job_that_did_not_complete_fails():
    steps, _ = run([(protocol.job_return_tag(JID, NODE), {"id": NODE, "return": "ERROR: state queue"})])
    assert steps == [("failed", "the state run did not complete: ERROR: state queue")]


def test_minion_restarted_during_its_update_probes_and_looks_directly():
    # A reboot: the job is lost, its active event may be too; the probe's answer counts, the evidence does not.
    steps, node = run([phase("stopping"), phase("installing"), restart(), probe_ret()])
    assert [k for k, _ in steps] == ["phase", "phase", "prepare", "probe", "done"]
    assert steps[-1] == ("done", None) and node.restarted


def test_an_active_event_after_a_restart_is_looked_at_again():
    steps, _ = run([phase("installing"), restart(), active()])
    assert steps[-1] == ("done", None)  # the job that made the evidence was lost: a direct look decides


def test_a_burst_of_start_events_costs_one_probe():
    # Salt 3007 after a master restart: the minion fires its start event at every reconnection, seconds apart.
    steps, node = run([phase("installing"), restart(), restart(), 5, restart(), 5, restart(), probe_ret()])
    assert [k for k, _ in steps] == ["phase", "prepare", "probe", "done"]
    assert steps[-1] == ("done", None) and node.restarted


def test_a_probe_unanswered_for_the_interval_is_asked_again_after_another_start():
    interval = watch.PROBE_INTERVAL
    # No start event since the probe: it stands (the minion did not restart again, its job still runs).
    steps, _ = run([phase("installing"), restart(), interval + 1, 1])
    assert [k for k, _ in steps] == ["phase", "prepare", "probe"]
    # Another start while it was out, and no answer for the interval: asked once more, then once only.
    steps, _ = run([phase("installing"), restart(), restart(), interval - 1, restart(), 2, restart(), 1, 1])
    assert [k for k, _ in steps] == ["phase", "prepare", "probe", "probe"]
    # Answered (not active yet): the next start event probes at once.
    steps, _ = run([phase("installing"), restart(), probe_ret(active_now=False), restart(), probe_ret()])
    assert [k for k, _ in steps] == ["phase", "prepare", "probe", "probe", "done"]


def test_a_start_event_while_no_probe_could_be_published_probes_again():
    steps, _ = run([phase("installing"), restart(), restart(), probe_ret()], probe=None)
    assert [k for k, _ in steps] == ["phase", "prepare", "probe", "probe"]  # the probe's return is not known


def test_no_probe_is_asked_once_the_node_is_active():
    steps, _ = run([phase("installing"), restart(), restart(), watch.PROBE_INTERVAL + 1, beacon("active")])
    assert [k for k, _ in steps] == ["phase", "prepare", "probe", "probe", "done"]
    # The beacon's word comes when the probe has stood its interval: done, not probed once more.
    late = [restart(), restart(), watch.PROBE_INTERVAL - 0.25, active(minion="node3"), beacon("active")]
    steps, _ = run([phase("installing"), *late])
    assert [k for k, _ in steps] == ["phase", "prepare", "probe", "done"]


def test_job_lost_without_any_word_times_out_and_says_so():
    steps, node = run([phase("installing"), restart(), 30, 30, 50])
    assert steps[-1] == ("timeout", True)
    error = node.timeout_error(
        {"state": "inactive", "installed": "5.26.0", "running": None, "reasons": ["services not running: IRM"]}
    )
    assert error.startswith("the minion restarted during its update (its job was lost); not active within 60 s")


def test_the_beacons_word_first():
    # A rebooted node's minion starts, its beacon looks at once: its event may come before the minion's start.
    steps, _ = run([phase("installing"), beacon("active"), restart()])
    assert [k for k, _ in steps] == ["phase", "prepare", "probe", "done"] and steps[-1] == ("done", None)
    steps, _ = run([phase("installing"), restart(), beacon("active")])
    assert steps[-1] == ("done", None)


def test_a_beacon_inactive_after_active_takes_it_back():
    steps, node = run([restart(), beacon("inactive"), 1])
    assert node.finished is None
    steps, node = run([beacon("active"), beacon("inactive"), ret(), 1])
    assert node.finished is None


def test_a_phase_after_an_active_beacon_tick_makes_it_stale():
    steps, node = run([beacon("active"), phase("waiting"), ret(), 1])
    assert node.finished is None  # the tick predates the step
    steps, _ = run([beacon("active"), phase("waiting"), ret(), active()])
    assert steps[-1] == ("done", ACTIVE_STATE)


def test_an_event_after_the_return_is_taken():
    steps, _ = run([ret(), phase("waiting"), active()])
    assert steps[-1] == ("done", ACTIVE_STATE)


def test_a_finished_watch_stays_finished():
    _, node = run([active(), ret()])
    assert node.observe(*ret(result=False), 1.0) == [node.finished]


def test_timeout():
    steps, node = run([phase("stopping"), 99.0, 5.0])
    assert steps[-1] == ("timeout", False)
    assert node.timeout_error(
        {"state": "inactive", "installed": "5.25.2", "running": "5.25.2", "reasons": ["x"]}
    ).startswith("not active within 60 s (a timeout is a failure)")


def test_a_resumed_job_is_done_once_it_succeeded():
    steps, _ = run([ret()], resumed=True)
    assert steps == [("done", None)]


@pytest.mark.parametrize(
    "event",
    [
        active(minion="node3"),  # another minion's
        (protocol.NODE_ACTIVE, {"data": protocol.node_event(ACTIVE_STATE)}),  # no id (a batched, unverified event)
        beacon("active", minion="node3"),  # another minion's beacon
        beacon("active", data_id="node3"),  # a beacon tag naming node2, sent by node3
        (protocol.beacon_tag(NODE, "active"), {}),  # a beacon event with no id at all
        ret(jid=PROBE_JID),  # a job return that is not the update's (no probe was asked)
        probe_ret(minion="node3"),
        (protocol.NODE_ACTIVE, "not a dict"),
    ],
)
def test_events_that_must_not_count(event):
    steps, node = run([ret(), event, 1])
    assert node.finished is None, steps


@pytest.mark.parametrize(
    "event",
    [
        phase("installing", minion="node3"),
        (protocol.NODE_PHASE, {"id": NODE, "data": "garbage"}),
        (protocol.NODE_PHASE, {"id": NODE, "data": {"phase": "rebooting-the-world"}}),
        restart(minion="node3"),
    ],
)
def test_foreign_or_malformed_phases_record_nothing(event):
    steps, node = run([event, 1])
    assert steps == [] and not node.restarted


# -- the prepared job ------------------------------------------------------------------------------------------


def prepared():
    return watch.PreparedJob("node3", "r1:abcd1234", "20261201120000000009")


def test_a_prepared_job_is_ready_at_its_own_gate_only():
    job = prepared()
    job.observe(*phase("ready", minion="node3", gate="r1:other"))
    job.observe(*phase("ready", minion="node2", gate="r1:abcd1234"))
    assert not job.settled
    job.observe(*phase("ready", minion="node3", gate="r1:abcd1234"))
    assert job.settled and job.usable


def test_a_prepared_job_that_ended_is_not_used():
    job = prepared()
    job.observe(*phase("ready", minion="node3", gate="r1:abcd1234"))
    job.observe(*ret(jid="20261201120000000009", minion="node3", result=False, comment="Not released"))
    assert job.settled and not job.usable and job.why_unusable(5) == "ended before its turn"


def test_a_prepared_job_is_lost_with_its_minion():
    job = prepared()
    job.observe(*restart(minion="node3"))
    assert job.settled and not job.usable and job.why_unusable(5) == "was lost with its minion"


def test_a_prepared_job_not_ready_in_time():
    job = prepared()
    job.observe(*restart(minion="node2"))
    job.observe(*ret(jid="20261201120000000009", minion="node2"))
    assert not job.settled and job.why_unusable(5) == "was not ready within 5 s"


def test_a_followed_job_is_asked_about_and_its_unheard_end_ends_the_wait():
    """A job a lost driver published (maybe on another master, whose return never comes here): every FOLLOW_CHECK
    seconds the minion is asked whether it still runs it; once it does not, the wait ends unheard."""
    node = watch.NodeWatch(NODE, JID, 100.0, 60, resumed=True)
    assert node.observe(None, None, 0.0) == []  # the first look starts the count
    assert node.observe(None, None, watch.FOLLOW_CHECK - 0.1) == []
    assert node.observe(None, None, watch.FOLLOW_CHECK) == [(watch.FIND_JOB, JID)]
    assert node.job_running({"jid": JID, "fun": "state.single"}) == []  # still runs
    assert node.job_running(False) == []  # no answer (restarting): asked again later
    assert node.observe(None, None, watch.FOLLOW_CHECK + 1) == []
    assert node.observe(None, None, 2 * watch.FOLLOW_CHECK) == [(watch.FIND_JOB, JID)]
    assert node.job_running({}) == [(watch.UNHEARD, None)]
    assert node.observe(*ret(), 2 * watch.FOLLOW_CHECK + 1) == [(watch.UNHEARD, None)]  # finished


def test_a_job_of_this_rollout_is_not_asked_about():
    node = watch.NodeWatch(NODE, JID, 100.0, 60)
    assert node.observe(None, None, 0.0) == [] and node.observe(None, None, 50.0) == []


def test_a_followed_job_whose_return_comes_is_done_without_asking():
    node = watch.NodeWatch(NODE, JID, 100.0, 60, resumed=True)
    node.observe(None, None, 0.0)
    assert node.observe(*ret(), 1.0) == [(watch.DONE, None)]
    assert node.job_running({}) == []
