"""The fault matrix of a rolling update, on a real master and three real minions.

Every test injects one fault and checks three things: the outcome (completed,
halted or refused, with a reason that says what happened), that the rollout
record (``salt-run rolling.status``) matches what the simulated nodes really are,
and, where a node was touched, that never more than one node was down.

Covered elsewhere, not repeated here:

- the master restarted in the middle of a rollout, then ``rolling.resume``:
  ``test_rolling.py::test_master_restart_mid_rollout_then_resume``;
- a second rollout requested through the reactor while one runs:
  ``test_rolling.py::test_reactor_starts_a_rollout_and_refuses_a_concurrent_one``
  (the plain ``salt-run`` case is below).
"""

import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time

import psutil
import pytest

from expressware_sim import down_intervals, max_nodes_down, merged_journal, service_provider_config, write_sia
from tests.conftest import NEW, OLD, changing_commands, fresh_node
from tests.daemons import stopped
from tests.integration.conftest import NODE_IDS, sia_url
from tests.integration.rollouts import (  # noqa: F401 (fixtures)
    background_update,
    commands,
    data_nodes,
    hold_installs,
    let_installs_go,
    no_leftover_lease,
    recorded_status,
    roots,
    running_state_jobs,
    update_args,
    wait_for,
)
from tests.privileges import PrefixedSaltMinion, no_read_prefix

#: Phases a node may have in the record of a rollout that is not running: anything
#: else (stopping, installing, waiting) would be a node in an unknown state.
SETTLED_PHASES = ("pending", "staged", "active", "failed", "skipped")


def events(node, name):
    return [e for e in node.journal() if e.get("event") == name]


def snapshot(nodes):
    return {node_id: changing_commands(node) for node_id, node in nodes.items()}


def latest_rollout(salt_run_cli):
    return salt_run_cli.run("rolling.status").data.get("rollout")


def untouched(node):
    """The node never went down and nothing ran on it that could take it down."""
    name = node.name
    assert down_intervals([node.root]).get(name, []) == [], merged_journal([node.root])
    assert commands(node, "--install-node") == [] and commands(node, "dis_services") == []
    state = node.state()
    assert state["active"] and state["installed_version"] == OLD and state["running_version"] == OLD
    assert node.application_running("ndbmtd") is True


def assert_record_matches_reality(record, nodes, targets=NODE_IDS):
    """Each node's phase and versions in the record against the simulated node itself."""
    assert sorted(record["nodes"]) == sorted(targets), record  # nothing lost, nothing invented
    for node_id, entry in record["nodes"].items():
        node = nodes[node_id]
        state = node.state()
        phase = entry["phase"]
        assert phase in SETTLED_PHASES, f"{node_id} left in phase {phase!r}: {record}"
        assert entry["before"] == OLD, (node_id, entry)
        if phase == "active":
            assert state["active"], (node_id, state)
            assert entry["after"] == state["installed_version"] == state["running_version"] == record["version"]
            assert node.application_running("ndbmtd") is True
        elif phase == "failed":
            assert entry["error"], (node_id, entry)
            assert entry["after"] == state["installed_version"], (node_id, entry, state)
        elif phase in ("pending", "staged"):
            assert entry["after"] is None and entry["error"] is None, (node_id, entry)
            untouched(node)
        else:  # skipped: already on the target
            assert entry["after"] == state["installed_version"], (node_id, entry, state)


def _finish(proc, timeout=300):
    """Wait for a background salt-run; return (exit status, JSON result, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"the background rollout did not finish within {timeout} s: {err.decode()[-3000:]}"
        ) from None
    try:
        data = json.loads(out)
    except ValueError:
        data = out.decode()
    return proc.returncode, data, err.decode()


def _kill(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


# ---------------------------------------------------------------------------
# Faults on a node: the per-node procedure copes, or the rollout halts
# ---------------------------------------------------------------------------


def test_services_that_will_not_stop_take_the_reboot_path(salt_run_cli, nodes):
    nodes["node2"].set_fault("stop-blocked")  # something outside `applications` holds SuperSockets
    ret = salt_run_cli.run("rolling.update", *update_args(), _timeout=300)
    assert ret.returncode == 0, ret.stderr
    assert ret.data["status"] == "done", ret.data
    assert [e for e in commands(nodes["node2"], "dis_services stop") if e["exit"] != 0], "the stop did not fail"
    assert events(nodes["node2"], "reboot"), "node2 was not rebooted"
    (install,) = commands(nodes["node2"], "--install-node")
    assert "--reboot" in install["command"] and "--use-rpms" in install["command"]
    for node_id in ("node1", "node3"):
        assert events(nodes[node_id], "reboot") == []  # only the node that needed it
    assert_record_matches_reality(salt_run_cli.run("rolling.status").data, nodes)
    assert max_nodes_down(roots(nodes)) == 1, merged_journal(roots(nodes))


def test_drivers_that_will_not_start_take_the_reboot_path(salt_run_cli, nodes):
    nodes["node3"].set_fault("start-fails-until-reboot")  # memory too fragmented for the IRM driver
    ret = salt_run_cli.run("rolling.update", *update_args(), _timeout=300)
    assert ret.returncode == 0, ret.stderr
    assert ret.data["status"] == "done", ret.data
    first, second = commands(nodes["node3"], "--install-node")
    assert first["exit"] == 1 and "--reboot" not in first["command"]  # files in, drivers did not start
    assert first["sia_version"] == second["sia_version"] == NEW
    assert second["exit"] == 0 and "--reboot" in second["command"]
    assert events(nodes["node3"], "reboot")
    assert nodes["node3"].state()["faults"]["start-fails-until-reboot"] is False  # the reboot fixed it
    assert_record_matches_reality(salt_run_cli.run("rolling.status").data, nodes)
    assert max_nodes_down(roots(nodes)) == 1, merged_journal(roots(nodes))


def test_node_that_never_becomes_active_halts_with_evidence(salt_run_cli, salt_cli, nodes):
    nodes["node1"].set_fault("never-active")  # takes effect at its next start: its links never train
    ret = salt_run_cli.run("rolling.update", *update_args(node_timeout=5), _timeout=300)
    assert ret.returncode == 1, ret.stderr
    status = salt_run_cli.run("rolling.status").data
    assert status["status"] == "halted" and status["rollout"] == ret.data["rollout"]
    assert status["reason"].startswith("node1 failed: ")
    node1 = status["nodes"]["node1"]
    assert node1["phase"] == "failed"
    # The runner's deadline or the state's own wait, whichever ends first.
    assert re.search(r"not (become )?active within 5 s", node1["error"]), node1
    assert "dis_diag" in node1["error"]  # the evidence: what the node itself reported
    assert node1["after"] == NEW and nodes["node1"].state()["installed_version"] == NEW
    assert not nodes["node1"].is_active()
    assert nodes["node1"].application_running("ndbmtd") is False  # not started on a broken stack
    assert [status["nodes"][n]["phase"] for n in ("node2", "node3")] == ["staged", "staged"]
    # Nothing else touched: node2 only received RPMs (not a command on the node), node3
    # built its group's RPMs before any node went down (a build does not take it down).
    assert changing_commands(nodes["node2"]) == []
    assert [e["command"] for e in changing_commands(nodes["node3"])] == ["sia --build-rpm --batch"]
    assert_record_matches_reality(status, nodes)
    assert status["lease"]["held"] is True  # the cluster stays at one node down
    # node2 was prepared while node1 installed; the halt cancelled its job (it does not
    # hold node2's state queue, and changed nothing).
    assert "node2: prepared" in ret.stderr
    wait_for(lambda: salt_cli.run("saltutil.running", minion_tgt="node2").data == [], 30, "node2's prepared job to end")
    assert changing_commands(nodes["node2"]) == []
    assert max_nodes_down(roots(nodes)) == 1


# ---------------------------------------------------------------------------
# A minion that goes away
# ---------------------------------------------------------------------------

# The master restarted in the middle of a rollout is covered by
# test_rolling.py::test_master_restart_mid_rollout_then_resume.


def test_minion_stopped_during_its_install_then_started(minions, salt_run_cli, nodes):
    """salt-minion is stopped (SIGTERM) and started again while its node installs.

    A stopping salt-minion lets the running job finish. Depending on when it goes,
    the node's active event (sent through the stopping minion) is lost, and the
    runner learns of the restart and asks the node again (``expressware.wait_active``);
    or the event arrives and the runner's direct check goes to a minion that is
    gone, and is asked again once it is back. Either way the rollout completes,
    node2 installed once.
    """
    nodes["node2"].set_delays(install=4)  # a long install to stop the minion in
    proc = background_update(salt_run_cli, *update_args(node_timeout=60, timeout=5))
    try:
        # The installer has stopped the services and is writing the packages.
        wait_for(lambda: events(nodes["node2"], "sia-stop"), 120, "node2's installation to begin")
        assert commands(nodes["node2"], "--install-node") == []  # still running
        with stopped(minions[1]):
            pass
        code, data, err = _finish(proc)
    finally:
        _kill(proc)
    assert code == 0, err
    assert data["status"] == "done", data
    (install,) = commands(nodes["node2"], "--install-node")  # not repeated
    assert install["exit"] == 0
    for node_id in ("node1", "node3"):
        assert len(commands(nodes[node_id], "--install-node")) == 1
    status = salt_run_cli.run("rolling.status").data
    assert status["rollout"] == data["rollout"] and status["status"] == "done"
    assert_record_matches_reality(status, nodes)
    assert max_nodes_down(roots(nodes)) == 1, merged_journal(roots(nodes))


def _kill_tree(daemon):
    """SIGKILL a daemon and everything it started (its jobs, and the installer they run)."""
    process = psutil.Process(daemon.pid)
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def test_minion_killed_with_its_installer_halts_then_resume_completes(minions, salt_run_cli, nodes):
    """salt-minion and the installer it runs are killed (power loss of the minion side).

    node2 is left down on the old version: nothing will make it active. The runner
    sees the minion start again, asks the node, and halts when node_timeout is up,
    saying what the node is; resume installs it again and completes.
    """
    nodes["node2"].set_delays(install=3)
    proc = background_update(salt_run_cli, *update_args(node_timeout=12))
    try:
        wait_for(lambda: events(nodes["node2"], "sia-stop"), 120, "node2's installation to begin")
        with stopped(minions[1], before_stop=_kill_tree):
            pass
        code, data, err = _finish(proc)
    finally:
        _kill(proc)
    assert code == 1, err
    assert data["status"] == "halted", data
    assert "node2: minion restarted" in err, err
    state = nodes["node2"].state()
    assert state["installed_version"] == OLD and not state["all_running"]  # the install died half-way
    assert commands(nodes["node2"], "--install-node") == []  # the killed installer never finished
    node2 = data["nodes"]["node2"]
    assert node2["phase"] == "failed" and node2["after"] == OLD
    assert "not active within 12 s" in node2["error"] and "services not running" in node2["error"]
    assert node2["error"].startswith("the minion restarted during its update")
    assert data["nodes"]["node3"]["phase"] == "staged"
    status = salt_run_cli.run("rolling.status").data
    assert_record_matches_reality(status, nodes)
    assert max_nodes_down(roots(nodes)) == 1

    ret = salt_run_cli.run("rolling.resume", _timeout=300)
    assert ret.returncode == 0, ret.stderr
    assert ret.data["status"] == "done", ret.data
    assert len(events(nodes["node2"], "sia-stop")) == 2  # the killed attempt, then the complete one
    (install,) = commands(nodes["node2"], "--install-node")
    assert install["exit"] == 0
    for node_id in ("node1", "node3"):
        assert len(commands(nodes[node_id], "--install-node")) == 1  # finished nodes not redone
    assert_record_matches_reality(salt_run_cli.run("rolling.status").data, nodes)
    assert max_nodes_down(roots(nodes)) == 1, merged_journal(roots(nodes))


def test_minion_not_answering_at_preflight_touches_nothing(master, minions, salt_run_cli, nodes, event_listener):
    before = snapshot(nodes)
    rollout_before = latest_rollout(salt_run_cli)
    start = time.time()
    with stopped(minions[2]):
        ret = salt_run_cli.run("rolling.update", *update_args(timeout=5), _timeout=300)
    assert ret.returncode == 1, ret.stderr
    assert ret.data["status"] == "refused"
    assert ret.data["problems"] == {"node3": "did not answer"}, ret.data
    assert "no answer from node3; asking once more" in ret.stderr  # a lost publish is not taken for a dead node
    # Said on the bus too (a rollout the reactor started has no terminal).
    (refused,) = event_listener.get_events([(master.id, "expressware/rolling/refused")], after_time=start)
    assert refused.data["problems"] == {"node3": "did not answer"} and "pre-flight" in refused.data["reason"]
    assert snapshot(nodes) == before
    assert latest_rollout(salt_run_cli) == rollout_before  # no record of a rollout that never started
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False


def test_a_salt_run_killed_in_its_preflight_leaves_a_record_of_the_lease_it_holds(master, minions, salt_run_cli, nodes):
    """Whatever Salt does, a rollout that holds the cluster's lease has a record that says so: node3 does not answer,
    so the pre-flight waits; meanwhile status names the rollout that holds the lease, and once its salt-run is
    killed, says so and how to release it. Nothing was touched."""
    before = snapshot(nodes)
    with stopped(minions[2]):
        proc = background_update(salt_run_cli, *update_args(timeout=30))
        try:

            def in_preflight():
                return recorded_status(master).get("status") == "preflight"

            wait_for(in_preflight, 60, "the rollout's record in its pre-flight")
            status = salt_run_cli.run("rolling.status").data
            assert status["lease"]["holder"] == f"rolling:{status['rollout']}", status
            assert status["driver"]["alive"] is True, status
        finally:
            _kill(proc)
        status = salt_run_cli.run("rolling.status").data
        assert status["status"] == "preflight" and status["driver"]["alive"] is False, status
        assert "died in its pre-flight" in status["comment"], status
        assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is True
        aborted = salt_run_cli.run("rolling.abort")
        assert aborted.returncode == 0, aborted.stderr
        assert aborted.data["status"] == "aborted", aborted.data
        assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False
    assert snapshot(nodes) == before


def _stop_node3_once(ready, what, minions, nodes, proc, held):
    """Wait for ``ready`` (``what``), stop node3's salt-minion before its turn, let the installs of ``held`` go (held
    until then) and the rollout ``proc`` end meanwhile: its (exit status, summary, stderr)."""
    try:
        wait_for(ready, 120, what)
        with stopped(minions[2]):
            assert commands(nodes["node2"], "--install-node") == [], "node2 installed before node3 was stopped"
            let_installs_go(nodes, *held)
            return _finish(proc)
    finally:
        let_installs_go(nodes, *held)  # also when the test failed: no installer waits for an hour
        _kill(proc)


def _resume_completes(salt_run_cli, nodes):
    """``rolling.resume`` finishes the rollout; nothing is installed twice."""
    ret = salt_run_cli.run("rolling.resume", _timeout=300)
    assert ret.returncode == 0, ret.stderr
    assert ret.data["status"] == "done", ret.data
    for node_id in NODE_IDS:
        assert len(commands(nodes[node_id], "--install-node")) == 1
    assert_record_matches_reality(salt_run_cli.run("rolling.status").data, nodes)
    assert max_nodes_down(roots(nodes)) == 1, merged_journal(roots(nodes))
    return ret


def test_minion_gone_before_its_turn_halts_then_resume_completes(master, minions, salt_run_cli, nodes):
    hold_installs(nodes, "node1", "node2")  # until node3's minion is stopped (it takes seconds), before its turn
    earlier = (salt_run_cli.run("rolling.status").data or {}).get("rollout")
    proc = background_update(salt_run_cli, *update_args(timeout=5))

    # node3 is not needed again after its group's build until its turn: stopped once the
    # runner has the build (its job returned), not as soon as the installer ran (the build
    # job would be cut).
    def both_built():
        status = recorded_status(master)
        builds = status.get("builds") or {}
        return (
            status.get("rollout") not in (None, earlier)
            and len(builds) == 2
            and all(b["built"] for b in builds.values())
        )

    code, data, err = _stop_node3_once(both_built, "node3's build", minions, nodes, proc, ("node1", "node2"))
    assert code == 1, err
    assert data["status"] == "halted", data
    assert "node3 did not answer for 5 s before its turn" in data["reason"]
    assert "nothing was started on it" in data["reason"]
    assert [data["nodes"][n]["phase"] for n in NODE_IDS] == ["active", "active", "staged"]
    assert_record_matches_reality(salt_run_cli.run("rolling.status").data, nodes)
    assert [e["command"] for e in changing_commands(nodes["node3"])] == ["sia --build-rpm --batch"]
    assert max_nodes_down(roots(nodes)) == 1

    _resume_completes(salt_run_cli, nodes)


def test_minion_gone_after_it_was_prepared_halts_then_resume_completes(
    master, minions, salt_run_cli, nodes, event_listener
):
    """node3's job is prepared (checks done, waiting at its gate) while node2 installs; then its
    salt-minion stops. The go-ahead is not acknowledged: the rollout halts with node3 untouched and
    recorded so; its prepared job ends with its minion and does not hold node3's state queue; resume
    completes."""
    hold_installs(nodes, "node2")  # until node3's minion is stopped (it takes seconds)
    start = time.time()
    proc = background_update(salt_run_cli, *update_args(timeout=5))

    def node3_ready():
        events = event_listener.get_events([(master.id, "expressware/node/phase")], after_time=start)
        return any(e.data.get("id") == "node3" and e.data["data"].get("phase") == "ready" for e in events)

    code, data, err = _stop_node3_once(
        node3_ready, "node3's prepared job to be ready", minions, nodes, proc, ("node2",)
    )
    assert code == 1, err
    assert data["status"] == "halted", data
    assert data["reason"] == (
        "node3 did not answer for 5 s before its turn (its go-ahead was not acknowledged); nothing was started on it"
    )
    assert [data["nodes"][n]["phase"] for n in NODE_IDS] == ["active", "active", "staged"]
    assert [e["command"] for e in changing_commands(nodes["node3"])] == ["sia --build-rpm --batch"]
    assert_record_matches_reality(salt_run_cli.run("rolling.status").data, nodes)

    _resume_completes(salt_run_cli, nodes)


def test_prepared_job_of_a_killed_salt_run_ends_by_itself(master, salt_run_cli, salt_cli, nodes, event_listener):
    """salt-run is killed (SIGKILL: no cleanup, no cancel) while node2's job waits at its gate.

    Nothing would release that job before its gate_timeout (an hour by default), and it
    holds node2's state queue. It asks the master (every expressware:gate_check_interval,
    10 s) whether it is still wanted, learns that its driver is gone, and ends having
    changed nothing. rolling.resume then completes: node1's update, still running (a job
    outlives its salt-run), is followed, not started again.
    """
    # node2 is prepared while node1 installs, and the resume must come before node1's install ends: under load 30 s
    # was too short once (the resume started 33 s after the install), 45 s once more (every question to Salt between
    # the kill and the resume counts: the test asks only what it must before the resume).
    nodes["node1"].set_delays(install=60)
    start = time.time()
    proc = background_update(salt_run_cli, *update_args())

    def node2_ready():
        events = event_listener.get_events([(master.id, "expressware/node/phase")], after_time=start)
        return any(e.data.get("id") == "node2" and e.data["data"].get("phase") == "ready" for e in events)

    try:
        wait_for(node2_ready, 120, "node2's prepared job to be ready")
        (job,) = running_state_jobs(salt_cli, "node2")
        (node1_job,) = running_state_jobs(salt_cli, "node1")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        killed = time.monotonic()
        wait_for(
            lambda: not running_state_jobs(salt_cli, "node2"), 60, "node2's prepared job to end"
        )  # 10 s + a question
        took = time.monotonic() - killed
    finally:
        _kill(proc)
    assert took < 25, f"the prepared job ended {took:.1f} s after its salt-run was killed"
    assert changing_commands(nodes["node2"]) == [] and nodes["node2"].application_running("ndbmtd") is True
    untouched(nodes["node2"])
    assert nodes["node1"].state()["installed_version"] == OLD  # still installing
    ret = _resume_completes(salt_run_cli, nodes)
    answer = json.dumps(salt_run_cli.run("jobs.lookup_jid", job["jid"]).data)
    assert "the rollout will not release it: the driver of rollout" in answer, answer
    assert "nothing was changed on this node" in answer, answer
    assert f"node1: its update (job {node1_job['jid']}) still runs; following it" in ret.stderr, ret.stderr


# ---------------------------------------------------------------------------
# One rollout at a time
# ---------------------------------------------------------------------------


def test_second_salt_run_is_refused_while_one_runs(master, salt_run_cli, nodes, event_listener):
    """The plain ``salt-run`` case (the reactor's is in test_rolling.py)."""
    for node in nodes.values():
        node.set_delays(install=1)
    lease_file = os.path.join(master.config["cachedir"], "expressware", "leases", "default.json")
    start = time.time()
    proc = background_update(salt_run_cli, *update_args())
    try:
        wait_for(lambda: os.path.exists(lease_file), 120, "the first rollout to take the cluster's lease")
        before = snapshot(nodes)
        second = salt_run_cli.run("rolling.update", *update_args(), _timeout=120)
        assert proc.poll() is None, "the first rollout ended before the second was asked for"
        code, data, err = _finish(proc)
    finally:
        _kill(proc)
    assert second.returncode == 1, second
    assert second.data["status"] == "refused" and "busy" in second.data["comment"], second.data
    assert second.data["lease"]["holder"] == f"rolling:{data['rollout']}"
    refused = event_listener.wait_for_events([(master.id, "expressware/rolling/refused")], after_time=start, timeout=60)
    assert refused.found_all_events, "no expressware/rolling/refused event"
    (event,) = refused.matches
    assert event.data["holder"] == f"rolling:{data['rollout']}"
    # The refused request changed nothing: every command since ran for the first rollout.
    assert all(changing_commands(node)[: len(before[node_id])] == before[node_id] for node_id, node in nodes.items())
    assert code == 0 and data["status"] == "done", err
    status = salt_run_cli.run("rolling.status").data
    assert status["rollout"] == data["rollout"]  # the refused one left no record
    assert_record_matches_reality(status, nodes)
    started = event_listener.get_events([(master.id, "expressware/rolling/*/start")], after_time=start)
    assert len(started) == 1
    assert max_nodes_down(roots(nodes)) == 1


# ---------------------------------------------------------------------------
# The installer
# ---------------------------------------------------------------------------


def test_missing_installer_is_refused_at_preflight(salt_run_cli, nodes):
    before = snapshot(nodes)
    rollout_before = latest_rollout(salt_run_cli)
    version = "5.26.5"  # no Dolphin_eXpressWare-5.26.5.sh in the master's file root
    ret = salt_run_cli.run("rolling.update", *update_args(version=version, sia=sia_url(version)), _timeout=120)
    assert ret.returncode == 1, ret.stderr
    assert ret.data["comment"] == "pre-flight failed; nothing was touched"
    assert sorted(ret.data["problems"]) == sorted(NODE_IDS)
    for problem in ret.data["problems"].values():
        assert problem.startswith("installer not reachable: ") and "not found on the master" in problem, problem
    assert snapshot(nodes) == before
    assert latest_rollout(salt_run_cli) == rollout_before
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False


@contextlib.contextmanager
def minion_that_cannot_read(master, root, command_prefix):
    """A fourth minion, on its own simulated node, started with ``command_prefix`` (see tests/privileges.py).

    Only for the duration of one test: it is stopped and its key deleted afterwards,
    so that ``tgt='*'`` of the other tests still means the three nodes.
    """
    minion_id = "nodac1"
    node = fresh_node(root / minion_id, minion_id)
    node.add_application("ndbmtd")
    overrides = dict(node.minion_config(), **service_provider_config())
    factory = master.salt_minion_daemon(
        minion_id, overrides=overrides, factory_class=PrefixedSaltMinion, command_prefix=command_prefix
    )
    try:
        with factory.started():
            if command_prefix:
                # The daemon itself runs without the capabilities, not just the probe.
                status = pathlib.Path(f"/proc/{factory.pid}/status").read_text()
                caps = {
                    line.split(":")[0]: int(line.split()[1], 16)
                    for line in status.splitlines()
                    if line.startswith(("CapEff", "CapPrm", "CapBnd"))
                }
                dac = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
                assert all(not value & dac for value in caps.values()), caps
            yield minion_id, node
    finally:
        deleted = master.salt_key_cli().run("--yes", "--delete", minion_id)
    assert deleted.returncode == 0, deleted  # (not raised over a failure of the test itself)


def test_unreadable_installer_is_refused_at_preflight(master, salt_run_cli, nodes, tmp_path):
    sia = write_sia(tmp_path, NEW)
    sia.chmod(0)
    # As root (CI), the minion that checks the installer runs without CAP_DAC_OVERRIDE
    # and CAP_DAC_READ_SEARCH, so that its os.access/open really fail (EACCES).
    prefix = no_read_prefix(sia)
    before = snapshot(nodes)
    rollout_before = latest_rollout(salt_run_cli)
    with minion_that_cannot_read(master, tmp_path, prefix) as (minion_id, node):
        node_before = changing_commands(node)
        ret = salt_run_cli.run("rolling.update", *update_args(tgt=minion_id, sia=str(sia)), _timeout=120)
        assert ret.returncode == 1, ret.stderr
        assert ret.data["comment"] == "pre-flight failed; nothing was touched"
        assert ret.data["problems"] == {minion_id: f"installer not reachable: installer {sia} is not readable"}
        assert changing_commands(node) == node_before
        untouched(node)
    assert snapshot(nodes) == before
    assert latest_rollout(salt_run_cli) == rollout_before
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False


@pytest.fixture
def corrupt_installer(master):
    version = "5.26.9"
    path = write_sia(master.state_tree.base.write_path / "expressware", version, corrupt=True)
    try:
        yield version
    finally:
        path.unlink()


def test_corrupt_installer_halts_at_the_build(salt_run_cli, salt_cli, nodes, corrupt_installer):
    version = corrupt_installer
    ret = salt_run_cli.run("rolling.update", *update_args(version=version, sia=sia_url(version)), _timeout=300)
    assert ret.returncode == 1, ret.stderr
    status = salt_run_cli.run("rolling.status").data
    assert status["rollout"] == ret.data["rollout"] and status["status"] == "halted"
    assert status["reason"].startswith("build for ") and "failed" in status["reason"]
    assert "Error in checksums" in status["reason"]  # the installer's own words
    assert all(not build["built"] for build in status["builds"].values())
    assert [status["nodes"][n]["phase"] for n in NODE_IDS] == ["pending"] * 3
    # The installer refused before it did anything; no other node was asked to build.
    (build,) = changing_commands(nodes["node1"])
    assert build["command"] == "sia --build-rpm --batch" and build["exit"] == 1
    assert changing_commands(nodes["node2"]) == [] and changing_commands(nodes["node3"]) == []
    assert not list(nodes["node1"].workdir.glob("node_RPMS/*.rpm"))
    assert_record_matches_reality(status, nodes)
    assert max_nodes_down(roots(nodes)) == 0
    # node1 was prepared while it built; the halt came before its job was at its gate, and
    # still that job is gone (left waiting, it would hold node1's state queue).
    assert "node1: prepared" in ret.stderr
    assert salt_cli.run("saltutil.running", minion_tgt="node1").data == []


def test_rpms_of_another_kernel_are_refused(salt_cli, nodes):
    # The runner never does this: it groups nodes by CPU architecture, OS and kernel
    # (grains) and builds once per group, on the group's first node; RPMs only go to
    # nodes of the group they were built for (node3 here builds its own, see
    # test_rolling.py). This is the installer's own guard when someone does it by hand.
    ret = salt_cli.run("sia.build_rpm", sia_url(NEW), minion_tgt="node1", _timeout=120)
    assert ret.returncode == 0, ret
    shutil.copytree(nodes["node1"].workdir / "node_RPMS", nodes["node3"].workdir / "node_RPMS")
    before = nodes["node3"].state()
    ret = salt_cli.run("sia.install_node", sia_url(NEW), "use_rpms=True", minion_tgt="node3", _timeout=120)
    assert ret.returncode != 0, ret
    assert "exit status 4" in str(ret.data), ret.data
    assert "built for kernel 5.14.0-362.el9.x86_64, this Cluster Node runs 5.14.0-427.el9.x86_64" in str(ret.data)
    (refused,) = changing_commands(nodes["node3"])
    assert refused["exit"] == 4 and refused["outcome"] == "refused"
    after = nodes["node3"].state()
    assert after["installed_version"] == before["installed_version"] == OLD
    assert after["running_version"] == OLD and after["active"] and after["packages"] == before["packages"]
    assert events(nodes["node3"], "sia-stop") == [] and events(nodes["node3"], "down") == []
