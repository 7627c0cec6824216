"""``salt-run rolling.*`` on a real master with three minions on simulated nodes.

The simulator journals are the witness: when each node went down and came back
active, and which commands ran on it.
"""

import os
import signal
import time

import pytest

from expressware_sim import down_intervals, max_nodes_down, merged_journal
from expressware_sim.output import long_date
from tests.conftest import NEW, NEWER, OLD, changing_commands
from tests.daemons import stopped
from tests.integration.conftest import NODE_IDS, sia_url
from tests.integration.rollouts import (  # noqa: F401 (fixtures)
    background_update,
    commands,
    data_nodes,
    no_leftover_lease,
    roots,
    update_args,
    wait_for,
    wait_for_every_minion,
)
from tests.integration.test_operator_cli import operator
from tests.integration.test_vendor_formats import dis_services_status


def first_down(nodes):
    """Minions in the order they first went down."""
    intervals = down_intervals(roots(nodes))
    return [
        name for name, spans in sorted(intervals.items(), key=lambda item: item[1][0][0] if item[1] else 1e20) if spans
    ]


def test_happy_path_one_node_at_a_time_with_one_build_per_group(master, minions, salt_run_cli, nodes):
    """An operator's rollout from a shell (the real ``salt-run``, not the test wrapper) on nodes that print the
    vendor's own dated forms (build dates, ``(GX)``, SuperSockets' codename and build note: issue 14), then the
    same command again, ``rolling.status`` and a refused command's exit status."""
    for node in nodes.values():
        node.set_output_style("dated")
    returncode, data, stderr = operator(master, "salt-run", "rolling.update", *update_args(), timeout=300)
    assert returncode == 0, stderr
    assert data["status"] == "done", data
    assert data["order"] == list(NODE_IDS)
    for node_id in NODE_IDS:
        assert data["nodes"][node_id]["phase"] == "active"
        assert data["nodes"][node_id]["before"] == OLD and data["nodes"][node_id]["after"] == NEW
        assert nodes[node_id].state()["running_version"] == NEW and nodes[node_id].state()["output_style"] == "dated"
        # The node still prints the dated forms, now of the new version: the rollout read them.
        assert f"Dolphin IRM (GX) {NEW} ( {long_date(NEW)} ) is running." in dis_services_status(nodes[node_id]).stdout
        assert nodes[node_id].application_running("ndbmtd") is True
    # Never two nodes down, and in the planned order.
    assert max_nodes_down(roots(nodes)) == 1, merged_journal(roots(nodes))
    assert first_down(nodes) == list(NODE_IDS)
    # One build per group (node1+node2 share a kernel, node3 has its own), on the group's first node;
    # every node installs from staged RPMs.
    assert len(data["builds"]) == 2
    assert [len(commands(nodes[n], "--build-rpm")) for n in NODE_IDS] == [1, 0, 1]
    for node_id in NODE_IDS:
        installs = commands(nodes[node_id], "--install-node")
        assert len(installs) == 1 and "--use-rpms" in installs[0]["command"]
    # Progress went to stderr while the JSON result on stdout stayed parseable.
    assert "node2 (2/3): updating" in stderr
    # Each node was prepared ahead of its turn (node1 during the builds, the others while
    # the one before installed) and released, not published again at its turn.
    progress = stderr.splitlines()
    for position, node_id in enumerate(NODE_IDS):
        prepared = _line(progress, f"{node_id}: prepared")
        assert prepared < _line(progress, f"{node_id} ({position + 1}/3): updating")
        if position:
            previous = NODE_IDS[position - 1]
            assert _line(progress, f"{previous}: installing") < prepared < _line(progress, f"{previous}: active on")
    assert "updated the ordinary way" not in stderr
    # node1, the builder, went first with the RPMs where it built them; they were
    # pushed and staged on node2 while node1 was updated, before node2 was touched.
    staged_for_node2 = _line(progress, "on 1 node(s)")
    assert _line(progress, "node1 (1/3): updating") < staged_for_node2 < _line(progress, "node2 (2/3): updating")
    assert "not done yet" not in stderr

    returncode, status, stderr = operator(master, "salt-run", "rolling.status")
    assert returncode == 0, stderr
    assert status["rollout"] == data["rollout"] and status["status"] == "done", status
    assert status["lease"]["held"] is False

    # The same command again disturbs no node already on the target.
    before = {n: changing_commands(node) for n, node in nodes.items()}
    ret = salt_run_cli.run("rolling.update", *update_args(), _timeout=120)
    assert ret.returncode == 0, ret
    assert ret.data["counts"] == {"skipped": 3}
    assert {n: changing_commands(node) for n, node in nodes.items()} == before

    # A refused command exits non-zero from the shell.
    returncode, refused, stderr = operator(master, "salt-run", "rolling.update", *update_args(tgt="no-such-minion"))
    assert returncode == 1, (refused, stderr)


def _line(lines, text):
    """Index of the one line that contains ``text``."""
    (index,) = [i for i, line in enumerate(lines) if text in line]
    return index


def test_plan_changes_nothing(salt_run_cli, nodes):
    before = {n: changing_commands(node) for n, node in nodes.items()}
    ret = salt_run_cli.run("rolling.plan", *update_args(order=["node3"]), _timeout=120)
    assert ret.returncode == 0, ret
    assert ret.data["status"] == "planned"
    assert ret.data["order"] == ["node3", "node1", "node2"]
    assert ret.data["actions"] == {"node1": "install", "node2": "install", "node3": "install"}
    assert {n: changing_commands(node) for n, node in nodes.items()} == before
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False


def test_target_matching_nothing_is_an_error(salt_run_cli, nodes):
    ret = salt_run_cli.run("rolling.update", *update_args(tgt="no-such-minion*"), _timeout=120)
    assert ret.returncode != 0
    assert ret.data["problems"] == {"target": "the target matched no minion"}


def test_preflight_refuses_degraded_cluster_and_touches_nothing(salt_run_cli, nodes):
    nodes["node3"].set_fault("never-active")
    nodes["node3"].reboot()  # comes back up, but its links never train
    before = {n: changing_commands(node) for n, node in nodes.items()}
    ret = salt_run_cli.run("rolling.update", *update_args(), _timeout=120)
    assert ret.returncode == 1
    assert "node3" in ret.data["problems"] and "not active" in ret.data["problems"]["node3"]
    assert {n: changing_commands(node) for n, node in nodes.items()} == before


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"version": "5.x"}, "not an eXpressWare version"),
        ({"version": "$(reboot)"}, "not an eXpressWare version"),
        ({"sia": "Dolphin_eXpressWare-5.26.0.sh; rm -rf /"}, "salt:// URL or an absolute path"),
        ({"node_timeout": -1}, "node_timeout"),
        ({"canary": "two"}, "canary"),
        ({"applications": "ndbmtd"}, "applications must be a list"),
        ({"cluster": "../etc"}, "cluster"),
    ],
)
def test_bad_arguments_are_refused_before_anything(salt_run_cli, nodes, bad, message):
    before = {n: changing_commands(node) for n, node in nodes.items()}
    ret = salt_run_cli.run("rolling.update", *update_args(**bad), _timeout=60)
    assert ret.returncode != 0
    assert message in ret.stdout + ret.stderr
    assert {n: changing_commands(node) for n, node in nodes.items()} == before


def test_failing_node_halts_and_resume_completes(salt_run_cli, nodes):
    nodes["node2"].set_fault("never-active")  # takes effect at its next start
    ret = salt_run_cli.run("rolling.update", *update_args(node_timeout=8), _timeout=300)
    assert ret.returncode == 1
    assert ret.data["status"] == "halted"
    assert ret.data["nodes"]["node1"]["phase"] == "active"
    assert ret.data["nodes"]["node2"]["phase"] == "failed"
    assert "not active within" in ret.data["nodes"]["node2"]["error"]
    assert ret.data["nodes"]["node3"]["phase"] == "staged"
    # No further node touched: node3 saw its staged RPMs arrive and nothing else.
    assert commands(nodes["node3"], "--install-node") == [] and nodes["node3"].is_active()
    status = salt_run_cli.run("rolling.status")
    assert status.data["lease"]["held"] is True  # the cluster stays at one node down

    nodes["node2"].clear_faults()
    ret = salt_run_cli.run("rolling.resume", _timeout=300)
    assert ret.returncode == 0, ret
    assert ret.data["status"] == "done"
    assert all(nodes[n].state()["running_version"] == NEW for n in NODE_IDS)
    assert len(commands(nodes["node1"], "--install-node")) == 1  # not redone
    assert max_nodes_down(roots(nodes)) == 1


def test_resume_can_skip_a_node_explicitly(salt_run_cli, nodes):
    nodes["node1"].set_fault("never-active")
    ret = salt_run_cli.run("rolling.update", *update_args(node_timeout=5), _timeout=300)
    assert ret.data["nodes"]["node1"]["phase"] == "failed"
    ret = salt_run_cli.run("rolling.resume", "skip=[node1]", _timeout=300)
    assert ret.returncode == 0, ret
    assert ret.data["nodes"]["node1"]["phase"] == "skipped"
    assert ret.data["nodes"]["node3"]["phase"] == "active"


def test_canary_pauses_until_resume(salt_run_cli, nodes):
    ret = salt_run_cli.run("rolling.update", *update_args(canary=1), _timeout=300)
    assert ret.returncode == 0, ret
    assert ret.data["status"] == "paused" and "canary" in ret.data["reason"]
    assert [ret.data["nodes"][n]["phase"] for n in NODE_IDS] == ["active", "staged", "staged"]
    # While paused the rollout holds the cluster: a second rollout is refused.
    second = salt_run_cli.run("rolling.update", *update_args(), _timeout=60)
    assert second.returncode == 1 and "busy" in second.data["comment"]
    ret = salt_run_cli.run("rolling.resume", _timeout=300)
    assert ret.data["status"] == "done"


def test_abort_of_a_halted_rollout_releases_the_cluster(salt_run_cli, nodes):
    nodes["node1"].set_fault("never-active")
    salt_run_cli.run("rolling.update", *update_args(node_timeout=5), _timeout=300)
    ret = salt_run_cli.run("rolling.abort")
    assert ret.data["status"] == "aborted"
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False


def test_master_restart_mid_rollout_then_resume(master, minions, salt_run_cli, nodes):
    nodes["node2"].set_delays(install=3)  # a long install to restart the master in
    proc = background_update(salt_run_cli, *update_args())
    try:
        wait_for(
            lambda: commands(nodes["node2"], "--install-node") or nodes["node2"].state()["installed_version"] == NEW,
            120,
            "node2's installation to start",
        )
        with stopped(master):
            # The operator's salt-run dies with the master (or the terminal).
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        status = salt_run_cli.run("rolling.status")
        assert status.data["status"] == "running" and status.data["driver"]["alive"] is False
        assert status.data["nodes"]["node1"]["phase"] == "active"
        # As an operator would, once the minions answer again (a rollout right after the restart is the next test's).
        wait_for_every_minion(salt_run_cli, minions)
        ret = salt_run_cli.run("rolling.resume", _timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        wait_for_every_minion(salt_run_cli, minions)  # the next tests publish to every minion
    assert ret.returncode == 0, ret.stderr
    assert ret.data["status"] == "done"
    assert all(nodes[n].state()["running_version"] == NEW for n in NODE_IDS)
    assert len(commands(nodes["node1"], "--install-node")) == 1  # finished nodes are not redone
    assert len(commands(nodes["node2"], "--install-node")) == 1  # the interrupted install is not repeated
    assert max_nodes_down(roots(nodes)) == 1


def test_a_rollout_right_after_a_master_restart_reaches_every_minion(master, minions, salt_run_cli, nodes):
    # Idle minions reconnect to a restarted master's publisher on their own back-off
    # (seconds): a job published meanwhile is lost without a trace, and the pre-flight
    # refused a healthy cluster ("node1: did not answer"). (A minion whose request was
    # out while the master was down returns nothing until that request times out, up
    # to a minute: the default timeout waits for it; timeout=10 would not.)
    with stopped(master):
        pass
    try:
        ret = salt_run_cli.run("rolling.update", *update_args(), _timeout=300)
    finally:
        wait_for_every_minion(salt_run_cli, minions)
    assert ret.returncode == 0, ret.stderr
    assert ret.data["status"] == "done", ret.data
    assert all(nodes[n].state()["running_version"] == NEW for n in NODE_IDS)


def test_reactor_starts_a_rollout_and_refuses_a_concurrent_one(master, salt_run_cli, nodes, event_listener):
    start = time.time()
    for _ in range(2):
        ret = salt_run_cli.run("rolling.request", *update_args())
        assert ret.returncode == 0, ret
        assert ret.data["status"] == "requested", ret.data
    refused = event_listener.wait_for_events(
        [(master.id, "expressware/rolling/refused")], after_time=start, timeout=120
    )
    assert refused.found_all_events, "the second request was not refused"
    (refusal,) = refused.matches
    assert "busy" in refusal.data["reason"], refusal.data  # not refused for another reason
    finished = event_listener.wait_for_events(
        [(master.id, "expressware/rolling/*/finish")], after_time=start, timeout=300
    )
    ended = [
        (e.tag, e.data)
        for e in event_listener.get_events(
            [(master.id, "expressware/rolling/*/halted"), (master.id, "expressware/rolling/refused")], after_time=start
        )
    ]
    assert finished.found_all_events, f"the rollout started by the reactor did not finish: {ended}"
    assert all(nodes[n].state()["running_version"] == NEW for n in NODE_IDS)
    assert max_nodes_down(roots(nodes)) == 1
    started = event_listener.get_events([(master.id, "expressware/rolling/*/start")], after_time=start)
    assert len(started) == 1  # never two rollouts in parallel


def test_order_naming_an_untargeted_minion_is_refused(salt_run_cli, nodes):
    ret = salt_run_cli.run("rolling.update", *update_args(order=["node9"]), _timeout=120)
    assert ret.returncode == 1
    assert "not targeted: node9" in ret.data["comment"]
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False


def test_a_second_rollout_stages_only_its_own_rpms(salt_run_cli, nodes):
    assert salt_run_cli.run("rolling.update", *update_args(), _timeout=300).returncode == 0
    ret = salt_run_cli.run("rolling.update", *update_args(version=NEWER, sia=sia_url(NEWER)), _timeout=300)
    assert ret.returncode == 0, ret.stderr
    assert all(nodes[n].state()["running_version"] == NEWER for n in NODE_IDS)
