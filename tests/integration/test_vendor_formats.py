"""Real daemons on nodes that print the vendor's own forms (the simulator's ``dated`` output style).

Issue 14: on a stack that prints ``Dolphin KOSIF 5.25.2 ( April 24th 2026 ) is running.`` (the shape of
the vendor's verbatim output, expressware-facts.md §3.3) every node was refused at the pre-flight. Here
every node prints the dated forms (build dates, ``(GX)``, SuperSockets' codename and build note,
``is not running.``, dis_diag's release tag and its summary after the verdict); ``dis_services.status`` and
``expressware.node_state`` read them right. An operator's ``salt-run rolling.update`` (the venv's real command
line) rolls such nodes to the new version in
``test_rolling.py::test_happy_path_one_node_at_a_time_with_one_build_per_group``.
"""

import subprocess

import pytest

from expressware_sim.output import long_date
from tests.conftest import OLD
from tests.integration.conftest import NODE_IDS
from tests.integration.rollouts import data_nodes, no_leftover_lease, roots, update_args  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def dated_nodes(nodes, data_nodes):  # noqa: F811 (the fixture imported above)
    """Every node of this file prints the dated forms (reset_nodes recreated them in the simple style)."""
    for node in nodes.values():
        node.set_output_style("dated")
    return nodes


def dis_services_status(node):
    """What the node's own ``dis_services status`` prints (the witness that the forms are the dated ones)."""
    return subprocess.run([str(node.dis_services), "status"], capture_output=True, text=True, timeout=30, check=False)


def test_status_and_node_state_read_the_dated_forms(salt_cli, nodes):
    printed = dis_services_status(nodes["node1"]).stdout
    assert f"Dolphin KOSIF {OLD} ( {long_date(OLD)} ) is running." in printed
    assert f"Dolphin IRM (GX) {OLD} ( {long_date(OLD)} ) is running." in printed
    assert '"St.Martin"' in printed and "(built " in printed

    status = salt_cli.run("dis_services.status", minion_tgt="*")
    assert status.returncode == 0, status
    assert sorted(status.data) == list(NODE_IDS)
    for node_id, answer in status.data.items():
        assert answer["all_running"] is True and answer["running_version"] == OLD, (node_id, answer)
        assert answer["services"]["irm"] == {"label": "IRM", "running": True, "version": OLD, "pid": None}
        assert answer["services"]["nodemgr"]["pid"] == nodes[node_id].state()["services"]["dis_nodemgr"]["pid"]

    state = salt_cli.run("expressware.node_state", minion_tgt="*")
    assert state.returncode == 0, state
    for node_id, answer in state.data.items():
        assert (answer["state"], answer["running"], answer["installed"]) == ("active", OLD, OLD), (node_id, answer)

    diag = salt_cli.run("expressware.diag", minion_tgt="node1")
    assert diag.data["passed"] is True
    assert diag.data["lines"][-2:] == ["TEST RESULT: PASSED", "0 warnings and 0 errors"]
    assert (diag.data["driver_version"], diag.data["release_version"]) == (OLD, OLD)


def test_stopped_services_in_the_dated_wording(salt_cli, nodes):
    node = nodes["node2"]
    node.set_application("ndbmtd", False)  # it holds SuperSockets: the services stop only without it
    stopped = salt_cli.run("dis_services.stop", minion_tgt="node2")
    assert stopped.returncode == 0 and stopped.data["result"] is True, stopped
    assert "Dolphin IRM is not running." in dis_services_status(node).stdout

    status = salt_cli.run("dis_services.status", minion_tgt="node2")
    assert status.returncode == 0, status
    assert status.data["all_running"] is False and status.data["running_version"] is None
    assert not any(entry["running"] for entry in status.data["services"].values())
    state = salt_cli.run("expressware.node_state", minion_tgt="node2")
    assert state.data["state"] == "inactive" and state.data["running"] is None, state.data

    started = salt_cli.run("dis_services.start", minion_tgt="node2")
    assert started.returncode == 0 and started.data["result"] is True, started
    assert salt_cli.run("dis_services.status", minion_tgt="node2").data["running_version"] == OLD
