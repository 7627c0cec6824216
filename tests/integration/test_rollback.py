"""``salt-run rolling.rollback`` on a real master with three minions on simulated nodes: the nodes a rollout changed
go back to their versions before, most recent first, one down at a time (the simulator's journals are the witness),
as a rollout of its own linked to the original; a missing installer and bad input are refused with nothing touched.
"""

import subprocess

from expressware_sim import down_intervals, max_nodes_down, merged_journal, write_sia
from tests.conftest import NEW, OLD, changing_commands
from tests.integration.conftest import sia_url
from tests.integration.rollouts import (  # noqa: F401 (fixtures)
    background_update,
    commands,
    data_nodes,
    no_leftover_lease,
    recorded_status,
    roots,
    update_args,
    wait_for,
)
from tests.integration.test_operator_cli import operator


def snapshot(nodes):
    return {node_id: changing_commands(node) for node_id, node in nodes.items()}


def test_rollback_of_a_halted_canary_from_the_shell(master, salt_run_cli, nodes):
    """node1 updated, node2 fails (never active) and the rollout halts holding the lease; the real ``salt-run
    rolling.rollback`` takes the lease over and returns node2, then node1, to the old version; node3 untouched."""
    nodes["node2"].set_fault("never-active")  # takes effect at its next start
    ret = salt_run_cli.run("rolling.update", *update_args(node_timeout=8), _timeout=300)
    assert ret.data["status"] == "halted", ret.data
    original = ret.data["rollout"]
    assert [ret.data["nodes"][n]["phase"] for n in ("node1", "node2")] == ["active", "failed"]
    # The operator fixed the fault; node2 stays down (its services stopped) on the new version.
    nodes["node2"].clear_faults()
    subprocess.run([str(nodes["node2"].dis_services), "stop"], check=True, capture_output=True, timeout=60)
    assert not nodes["node2"].is_active() and nodes["node2"].state()["installed_version"] == NEW

    # The dry run: the plan, nothing touched.
    before = snapshot(nodes)
    code, plan, stderr = operator(master, "salt-run", "rolling.rollback", f"rollout={original}", "test=True")
    assert code == 0, stderr
    assert plan["status"] == "planned" and plan["order"] == ["node2", "node1"] and plan["version"] == OLD, plan
    assert plan["sia"] == sia_url(OLD) and plan["actions"] == {"node1": "install", "node2": "install"}
    assert snapshot(nodes) == before
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["holder"] == f"rolling:{original}"

    started = max(end or 0 for spans in down_intervals(roots(nodes)).values() for _, end in spans)
    code, data, stderr = operator(master, "salt-run", "rolling.rollback", f"rollout={original}", timeout=300)
    assert code == 0, stderr
    assert data["status"] == "done" and data["rollback_of"] == original, data
    assert data["order"] == ["node2", "node1"] and data["version"] == OLD
    for node_id in ("node1", "node2"):
        state = nodes[node_id].state()
        assert state["active"] and state["installed_version"] == state["running_version"] == OLD, (node_id, state)
        assert nodes[node_id].application_running("ndbmtd") is True
        # The downgrade is the installer's --enforce, which only the rollback's decision allowed.
        assert "--enforce" in commands(nodes[node_id], "--install-node")[-1]["command"]
    assert commands(nodes["node3"], "--install-node") == [] and nodes["node3"].state()["installed_version"] == OLD
    # One node down at a time, the whole way (node2 was down from its failure until the rollback took it back),
    # and most recent first: node2 active again before node1 went down.
    journals = merged_journal(roots(nodes))
    assert max_nodes_down(roots(nodes)) == 1, journals
    intervals = down_intervals(roots(nodes))
    node2_back = intervals["node2"][-1][1]
    node1_down = [start for start, _ in intervals["node1"] if start > started]
    assert node2_back is not None and len(node1_down) == 1 and node1_down[0] >= node2_back, journals

    # Linked both ways, on record, and the cluster free.
    status = salt_run_cli.run("rolling.status", f"rollout={original}").data
    assert status["rolled_back_by"] == data["rollout"] and status["status"] == "halted"
    assert salt_run_cli.run("rolling.status", f"rollout={data['rollout']}").data["rollback_of"] == original
    rows = {row["rollout"]: row for row in salt_run_cli.run("rolling.list").data}
    assert rows[original]["rolled_back_by"] == data["rollout"] and rows[data["rollout"]]["rollback_of"] == original
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False
    # Once rolled back, neither resumed nor rolled back again.
    again = salt_run_cli.run("rolling.rollback", f"rollout={original}")
    assert again.returncode == 1 and "already rolled back" in again.data["comment"]
    resumed = salt_run_cli.run("rolling.resume", f"rollout={original}")
    assert resumed.returncode == 1 and "rolled back by" in resumed.data["comment"]


def test_a_missing_old_installer_is_refused_at_the_preflight(master, salt_run_cli, nodes):
    """The update's installer came from a directory without the old one: the installer the rollback finds there
    does not exist; its pre-flight (which fetches it on every node) refuses, nothing is touched."""
    write_sia(master.state_tree.base.write_path / "expressware" / "only-new", NEW)
    sia = f"salt://expressware/only-new/Dolphin_eXpressWare-{NEW}.sh"
    ret = salt_run_cli.run("rolling.update", *update_args(tgt="node1", sia=sia), _timeout=300)
    assert ret.data["status"] == "done", ret.data
    original = ret.data["rollout"]
    before = snapshot(nodes)
    ret = salt_run_cli.run("rolling.rollback", f"rollout={original}", _timeout=120)
    assert ret.returncode == 1 and ret.data["status"] == "refused", ret.data
    assert "installer not reachable" in ret.data["problems"]["node1"], ret.data
    assert f"only-new/Dolphin_eXpressWare-{OLD}.sh" in ret.data["problems"]["node1"]
    assert snapshot(nodes) == before and nodes["node1"].state()["installed_version"] == NEW
    assert "rolled_back_by" not in salt_run_cli.run("rolling.status", f"rollout={original}").data
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False


def test_bad_input_is_refused(master, salt_run_cli, nodes):
    ret = salt_run_cli.run("rolling.rollback", "rollout=20990101T000000-abcdef")
    assert ret.returncode == 1 and "no rollout" in ret.data["comment"], ret.data
    ret = salt_run_cli.run("rolling.rollback")
    assert ret.returncode == 1 and "rollout is required" in ret.data["comment"], ret.data
    # A rollout still running (its driver alive) is not rolled back under it: node1 stays in flight (never active)
    # until the fault is cleared.
    nodes["node1"].set_fault("never-active")
    proc = background_update(salt_run_cli, *update_args(tgt="node1", node_timeout=120))
    seen = {}
    try:
        wait_for(
            lambda: (
                seen.update(recorded_status(master))
                or (seen.get("nodes") or {}).get("node1", {}).get("phase") in ("stopping", "installing", "waiting")
            ),
            60,
            "node1 in flight",
        )
        ret = salt_run_cli.run("rolling.rollback", f"rollout={seen['rollout']}")
        assert ret.returncode == 1 and "still running" in ret.data["comment"], ret.data
    finally:
        nodes["node1"].clear_faults()  # it becomes active: the rollout ends
        proc.communicate(timeout=300)
    assert "rolled_back_by" not in salt_run_cli.run("rolling.status", f"rollout={seen['rollout']}").data
