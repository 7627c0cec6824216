"""The expressware.installed state and the formula on three real minions with simulated nodes."""

import json
import subprocess
import time

import pytest

from expressware_sim import max_nodes_down, merged_journal
from tests.conftest import NEW, OLD, OLDER, changing_commands
from tests.integration.conftest import NODE_IDS, sia_url


@pytest.fixture(autouse=True)
def data_nodes(nodes, reset_nodes):
    """Each node runs an NDB data node on SuperSockets, which the state must stop first."""
    for node in nodes.values():
        node.add_application("ndbmtd")


def pillar(**values):
    values.setdefault("applications", ["ndbmtd"])
    return "pillar=" + json.dumps({"expressware": values})


def _state_results(minion_ret):
    """The single state's result dict out of a minion's state.apply return."""
    assert isinstance(minion_ret, dict), minion_ret
    (result,) = [v for k, v in minion_ret.items() if k.startswith("expressware_|-")]
    return result


@pytest.fixture
def release_leases(salt_run_cli):
    yield
    salt_run_cli.run("expressware_lease.release", "cluster=default")


def test_apply_on_all_nodes_at_once_never_takes_two_down(salt_cli, nodes, release_leases):
    ret = salt_cli.run("state.apply", "expressware", pillar(version=NEW), minion_tgt="*", _timeout=240)
    assert ret.returncode == 0, ret
    for node_id in NODE_IDS:
        result = _state_results(ret.data[node_id])
        assert result["result"] is True, result
        assert result["changes"]["version"] == {"old": OLD, "new": NEW}
        assert "released the update lease" in result["comment"]
        assert result["changes"]["applications_stopped"] == ["ndbmtd"]
        assert result["changes"]["applications_started"] == ["ndbmtd"]
        assert nodes[node_id].state()["installed_version"] == NEW
        assert nodes[node_id].application_running("ndbmtd") is True
    roots = [node.root for node in nodes.values()]
    assert max_nodes_down(roots) == 1, merged_journal(roots)

    # A second run changes nothing and disturbs no node.
    before = {node_id: changing_commands(node) for node_id, node in nodes.items()}
    ret = salt_cli.run("state.apply", "expressware", pillar(version=NEW), minion_tgt="*", _timeout=120)
    assert ret.returncode == 0, ret
    for node_id in NODE_IDS:
        result = _state_results(ret.data[node_id])
        assert result["result"] is True and result["changes"] == {}, result
        assert changing_commands(nodes[node_id]) == before[node_id]


def test_highstate_from_pillar(master, salt_cli, nodes, release_leases):
    top = "base:\n  '*':\n    - expressware\n"
    data = f"expressware:\n  version: '{NEW}'\n  applications: [ndbmtd]\n"
    with (
        master.state_tree.base.temp_file("top.sls", top),
        master.pillar_tree.base.temp_file("top.sls", "base:\n  '*':\n    - expressware\n"),
        master.pillar_tree.base.temp_file("expressware.sls", data),
    ):
        salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")
        ret = salt_cli.run("state.highstate", minion_tgt="*", _timeout=240)
    assert ret.returncode == 0, ret
    assert all(node.state()["installed_version"] == NEW for node in nodes.values())
    assert max_nodes_down([node.root for node in nodes.values()]) == 1


def test_test_mode_changes_nothing(salt_cli, nodes):
    before = {node_id: changing_commands(node) for node_id, node in nodes.items()}
    ret = salt_cli.run("state.apply", "expressware", pillar(version=NEW), "test=True", minion_tgt="*")
    for node_id in NODE_IDS:
        result = _state_results(ret.data[node_id])
        assert result["result"] is None, result
        assert result["changes"]["version"] == {"old": OLD, "new": NEW}
        assert "would be updated" in result["comment"]
        assert changing_commands(nodes[node_id]) == before[node_id]
        assert nodes[node_id].state()["installed_version"] == OLD


def test_downgrade_refused_names_the_rule(salt_cli, nodes):
    ret = salt_cli.run("state.apply", "expressware", pillar(version=OLDER), minion_tgt="node1")
    result = _state_results(ret.data)
    assert result["result"] is False
    assert "downgrade needs enforce=True" in result["comment"]
    assert nodes["node1"].state()["installed_version"] == OLD


def test_release_notes_rule_refuses(salt_cli, nodes):
    compat = {"incompatible": [NEW]}
    ret = salt_cli.run("state.apply", "expressware", pillar(version=NEW, compat=compat), minion_tgt="node1")
    result = _state_results(ret.data)
    assert result["result"] is False
    assert "compat:incompatible" in result["comment"] and "complete update" in result["comment"]


def test_services_that_cannot_stop_lead_to_reboot(salt_cli, nodes, release_leases):
    nodes["node2"].set_fault("stop-blocked")  # something outside the listed applications holds SuperSockets
    ret = salt_cli.run("state.apply", "expressware", pillar(version=NEW), minion_tgt="node2", _timeout=120)
    result = _state_results(ret.data)
    assert result["result"] is True, result
    assert "could not be stopped" in result["changes"]["dis_services"]
    assert result["changes"]["rebooted"] is True
    assert "--reboot" in result["changes"]["installer"]
    assert any(entry.get("event") == "reboot" for entry in nodes["node2"].journal())
    assert nodes["node2"].state()["running_version"] == NEW


def test_drivers_that_fail_to_start_are_rebooted(salt_cli, nodes, release_leases):
    nodes["node3"].set_fault("start-fails-until-reboot")
    ret = salt_cli.run("state.apply", "expressware", pillar(version=NEW), minion_tgt="node3", _timeout=120)
    result = _state_results(ret.data)
    assert result["result"] is True, result
    assert result["changes"]["rebooted"] is True
    assert "reinstalling with a reboot" in result["comment"]
    assert nodes["node3"].is_active()


def test_node_that_never_becomes_active_keeps_the_lease(salt_cli, salt_run_cli, nodes, release_leases):
    nodes["node2"].set_fault("never-active")
    ret = salt_cli.run("state.apply", "expressware", pillar(version=NEW, timeout=3), minion_tgt="node2", _timeout=120)
    result = _state_results(ret.data)
    assert result["result"] is False
    assert "did not become active within 3 s" in result["comment"]
    assert "applications were not started on the broken stack" in result["comment"]
    assert "dis_diag" in result["comment"]  # the node-state evidence
    assert nodes["node2"].application_running("ndbmtd") is False

    lease = salt_run_cli.run("expressware_lease.show", "cluster=default")
    assert lease.data["held"] is True and lease.data["holder"] == "node2"

    # Every other node defers and is not touched while node2 holds the lease.
    others = ["node1", "node3"]
    before = {node_id: changing_commands(nodes[node_id]) for node_id in others}
    ret = salt_cli.run(
        "state.apply", "expressware", pillar(version=NEW, lease_wait=2), "-L", minion_tgt="node1,node3", _timeout=120
    )
    for node_id in others:
        result = _state_results(ret.data[node_id])
        assert result["result"] is False
        assert "Deferred" in result["comment"] and "held by node2" in result["comment"]
        assert changing_commands(nodes[node_id]) == before[node_id]
        assert nodes[node_id].state()["installed_version"] == OLD

    # The operator fixes node2 and releases the lease; the others go ahead.
    nodes["node2"].clear_faults()
    ret = salt_run_cli.run("expressware_lease.release", "cluster=default")
    assert ret.data["released"] is True and ret.data["holder"] == "node2"
    ret = salt_cli.run("state.apply", "expressware", pillar(version=NEW), "-L", minion_tgt="node1,node3", _timeout=120)
    assert all(_state_results(ret.data[n])["result"] is True for n in others), ret.data


def test_masterless_works_without_lease(minions, nodes, master):
    nodes["node1"].set_application("ndbmtd", False)
    sia = master.state_tree.base.write_path / "expressware" / f"Dolphin_eXpressWare-{NEW}.sh"
    cli = minions[0].salt_call_cli(timeout=120)
    ret = cli.run("--local", "state.single", "expressware.installed", f"name={NEW}", f"sia={sia}")
    assert ret.returncode == 0, ret
    (result,) = ret.data.values()
    assert result["result"] is True, result
    assert "masterless run: no cluster update lease" in result["comment"]
    assert nodes["node1"].state()["installed_version"] == NEW


def test_missing_sia_is_refused_before_anything_stops(salt_cli, nodes, release_leases):
    before = changing_commands(nodes["node1"])
    ret = salt_cli.run(
        "state.apply",
        "expressware",
        pillar(version=NEW, sia="salt://expressware/Dolphin_eXpressWare-9.9.9.sh"),
        minion_tgt="node1",
    )
    result = _state_results(ret.data)
    assert result["result"] is False
    assert "not found on the master" in result["comment"]
    assert nodes["node1"].is_active()
    assert changing_commands(nodes["node1"]) == before


def test_installer_of_another_version_is_refused(salt_cli, nodes):
    ret = salt_cli.run("state.apply", "expressware", pillar(version=NEW, sia=sia_url(OLDER)), minion_tgt="node1")
    result = _state_results(ret.data)
    assert result["result"] is False
    assert f"is version {OLDER}, not {NEW}" in result["comment"]
    assert nodes["node1"].is_active()


def test_bad_cluster_name_is_refused_by_the_master(salt_cli, nodes):
    ret = salt_cli.run("state.apply", "expressware", pillar(version=NEW, cluster="../../etc"), minion_tgt="node1")
    # The master caches the pillar that run compiled (its inline cluster too): node1's own again for later tests.
    assert salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="node1").returncode == 0
    result = _state_results(ret.data)
    assert result["result"] is False
    assert "cluster '../../etc' must be" in result["comment"]
    assert nodes["node1"].is_active() and nodes["node1"].application_running("ndbmtd")


@pytest.mark.parametrize("release", ["go", "cancel"])
def test_gated_state_changes_nothing_until_released(master, salt_cli, nodes, event_listener, release):
    """The gate the rolling runner prepares the next node with: every check and the
    installer fetch first, then ``ready`` on the master's bus, then nothing until the
    go (or a cancel) arrives on the minion's own bus. (No rollout runs here: asked
    whether it is still wanted, after ``expressware:gate_check_interval``, the master
    would say no, so the test gives it 300 s; test_faults.py has a job that ends on that
    answer.)"""
    gate = f"test:{release}"
    start = time.time()
    cmdline = salt_cli.cmdline(
        "state.single",
        "expressware.installed",
        NEW,
        f"sia={sia_url(NEW)}",
        "applications=[ndbmtd]",
        "lease=False",
        f"gate={gate}",
        "gate_timeout=120",
        # Not asked whether it is still wanted while the test holds it (a slow machine takes more than the
        # default 10 s between ready and the test's go or cancel).
        'pillar={"expressware": {"gate_check_interval": 300}}',
        minion_tgt="node1",
    )
    proc = subprocess.Popen(cmdline, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = event_listener.wait_for_events([(master.id, "expressware/node/phase")], after_time=start, timeout=120)
        assert ready.found_all_events, "no ready announced"
        (event,) = ready.matches
        assert event.data["id"] == "node1" and event.data["data"]["phase"] == "ready"
        assert event.data["data"]["gate"] == gate
        time.sleep(1)  # held: a second later still nothing has changed
        assert proc.poll() is None
        assert changing_commands(nodes["node1"]) == []
        assert nodes["node1"].application_running("ndbmtd") is True
        # Another gate's go, and a cancel of another gate, do not release it.
        assert salt_cli.run("event.fire", '{"gate": "test:other"}', "expressware/gate/go", minion_tgt="node1").data
        assert salt_cli.run(
            "event.fire", '{"gates": ["test:other"]}', "expressware/gate/cancel", minion_tgt="node1"
        ).data
        time.sleep(0.5)
        assert proc.poll() is None and changing_commands(nodes["node1"]) == []
        if release == "go":
            fired = salt_cli.run("event.fire", json.dumps({"gate": gate}), "expressware/gate/go", minion_tgt="node1")
        else:
            fired = salt_cli.run(
                "event.fire",
                json.dumps({"gates": [gate], "reason": "the test said so"}),
                "expressware/gate/cancel",
                minion_tgt="node1",
            )
        assert fired.data is True, fired
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    result = _state_results(json.loads(out)["node1"])
    state = nodes["node1"].state()
    if release == "go":
        assert result["result"] is True, result
        assert f"released by the rolling runner (gate {gate})" in result["comment"]
        assert state["installed_version"] == NEW and nodes["node1"].is_active()
        assert nodes["node1"].application_running("ndbmtd") is True
    else:
        assert result["result"] is False, result
        assert result["comment"] == ("Not released (cancelled: the test said so); nothing was changed on this node")
        assert result["changes"] == {}
        assert changing_commands(nodes["node1"]) == [] and state["installed_version"] == OLD
        assert nodes["node1"].application_running("ndbmtd") is True


def test_gate_must_be_a_token(salt_cli, nodes):
    ret = salt_cli.run(
        "state.single",
        "expressware.installed",
        NEW,
        f"sia={sia_url(NEW)}",
        "lease=False",
        "gate=$(reboot)",
        minion_tgt="node1",
    )
    result = _state_results(ret.data)
    assert result["result"] is False and result["comment"].startswith("gate must be a token"), result
    assert changing_commands(nodes["node1"]) == []


def test_a_misspelt_argument_is_refused_before_anything(salt_cli, nodes):
    ret = salt_cli.run(
        "state.single",
        "expressware.installed",
        NEW,
        f"sia={sia_url(NEW)}",
        "aplications=[ndbmtd]",
        "lease=False",
        minion_tgt="node1",
    )
    result = _state_results(ret.data)
    assert result["result"] is False
    assert result["comment"] == "unknown argument(s) of expressware.installed: 'aplications'"
    assert changing_commands(nodes["node1"]) == [] and nodes["node1"].application_running("ndbmtd")


def test_a_state_run_queued_behind_a_prepared_job_runs_once_it_ends(master, salt_cli, nodes, event_listener):
    """A job the rolling runner prepared holds the node's state queue while it waits at
    its gate. A state run queued behind it (``queue=True``, as the runner's own) waits,
    then runs once the prepared job has ended (here: cancelled), with Salt's ``__pub_*``
    data handed on by the queue."""
    gate = "test:queue"
    start = time.time()
    common = [f"sia={sia_url(NEW)}", "applications=[ndbmtd]", "lease=False"]
    first = subprocess.Popen(
        salt_cli.cmdline(
            "state.single",
            "expressware.installed",
            NEW,
            *common,
            f"gate={gate}",
            "gate_timeout=120",
            minion_tgt="node1",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    second = None
    try:
        ready = event_listener.wait_for_events([(master.id, "expressware/node/phase")], after_time=start, timeout=120)
        assert ready.found_all_events, "no ready announced"
        second = subprocess.Popen(
            salt_cli.cmdline("state.single", "expressware.installed", NEW, *common, "queue=True", minion_tgt="node1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)
        assert second.poll() is None and changing_commands(nodes["node1"]) == []  # it waits in the queue
        fired = salt_cli.run(
            "event.fire",
            json.dumps({"gates": [gate], "reason": "the test said so"}),
            "expressware/gate/cancel",
            minion_tgt="node1",
        )
        assert fired.data is True, fired
        first_out, _ = first.communicate(timeout=120)
        second_out, second_err = second.communicate(timeout=180)
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
    assert _state_results(json.loads(first_out)["node1"])["result"] is False  # cancelled, changed nothing
    result = _state_results(json.loads(second_out)["node1"])
    assert result["result"] is True, (result, second_err)
    assert nodes["node1"].state()["installed_version"] == NEW and nodes["node1"].is_active()
    assert nodes["node1"].application_running("ndbmtd") is True
