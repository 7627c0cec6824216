"""The vendor's cluster view as a second gate, on real daemons (issue 11 item 2): with ``frontend=``, no node is
disrupted unless the frontend's Network Manager reports a state in ``cluster_states`` (default UP), reported again
after the node before it came back.

node3 is the Cluster Management Node (a simulated frontend, keeping its minion) with the notification script
installed by ``salt node3 state.apply expressware.notify`` (the real command line, test_cluster_state.py's
fixture) and the simulated Network Manager running as its own process, watching node1 and node2. The operator
degrades the cluster (links disabled) while node1 is in flight. "Down" is read from the simulator's journals.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from expressware_sim import down_intervals, merged_journal, read_journal
from expressware_sim.netmgr import script_options
from tests.conftest import NEW, OLD, REPO, changing_commands
from tests.integration.rollouts import (  # noqa: F401  # pylint: disable=unused-import
    background_update,
    data_nodes,
    no_leftover_lease,
    recorded_status,
    roots,
    update_args,
    wait_for,
)
from tests.integration.test_cluster_state import (  # noqa: F401  # pylint: disable=unused-import
    FRONTEND,
    MEMBERS,
    frontend,
    installed,
)

SIM = [sys.executable, "-m", "expressware_sim", "netmgr"]
ENV = dict(os.environ, PYTHONPATH=str(REPO / "src"))


def _netmgr(*args):
    done = subprocess.run(SIM + list(args), env=ENV, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done
    return done


@pytest.fixture
def network_manager(master, salt_cli, nodes, frontend, installed):  # noqa: F811
    """The Network Manager runs on node3 with the installed script; it has reported UP once (the pre-flight reads
    that report from the script's state file, whose directory node3's pillar names, as for the notify state)."""
    top = "base:\n  node3:\n    - expressware_notify\n"
    pillar = json.dumps({"expressware": {"notify": {"state_dir": installed["state_dir"]}}})
    with (
        master.pillar_tree.base.temp_file("top.sls", top),
        master.pillar_tree.base.temp_file("expressware_notify.sls", pillar),
    ):
        ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=FRONTEND)
        assert ret.returncode == 0, ret
        ret = salt_cli.run("config.get", "expressware:notify:state_dir", minion_tgt=FRONTEND)
        assert ret.data == installed["state_dir"], ret
        yield from _running_network_manager(nodes, frontend, installed)
    salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=FRONTEND)


def _running_network_manager(nodes, frontend, installed):  # noqa: F811
    members = [arg for m in MEMBERS for arg in ("--member", str(nodes[m].root))]
    _netmgr(
        "configure",
        str(frontend.root),
        *members,
        *script_options(installed["script"], installed["config"]),
    )
    # Links off and on again before the rollout: the script has reported DEGRADED, then UP.
    for args in (("degrade",), ("step",), ("degrade", "--clear"), ("step",)):
        _netmgr(args[0], str(frontend.root), *args[1:])
    with open(os.path.join(installed["state_dir"], "state.json"), encoding="utf-8") as fh:
        assert json.load(fh)["state"] == "UP"
    manager = subprocess.Popen(
        SIM + ["run", str(frontend.root), "--interval", "0.1"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield frontend
    finally:
        manager.terminate()
        manager.wait(timeout=60)


def _status(salt_run_cli):
    return salt_run_cli.run("rolling.status", _timeout=60).data or {}


def _degraded_while_node1_is_in_flight(nodes, salt_run_cli, frontend_root, health_wait):
    """A rollout of node1 and node2 with the frontend; the operator disables links while node1 is down."""
    nodes["node1"].set_delays(install=4)
    proc = background_update(
        salt_run_cli, *update_args(tgt=list(MEMBERS), frontend=FRONTEND, health_wait=health_wait, timeout=20)
    )
    try:
        wait_for(lambda: not nodes["node1"].is_active() or proc.poll() is not None, 120, "node1 to go down")
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.communicate()) from None
    assert proc.poll() is None, proc.communicate()
    _netmgr("degrade", str(frontend_root))
    return proc


def _notified(frontend_node, state):
    """When the Network Manager ran the script for ``state`` (its journal), in order."""
    return [e["time"] for e in read_journal(frontend_node.root) if e.get("command") == f"notify {state}"]


def test_a_degraded_cluster_holds_the_next_node_until_it_reports_up(
    salt_run_cli, nodes, network_manager, master, event_listener
):
    start = time.time()
    proc = _degraded_while_node1_is_in_flight(nodes, salt_run_cli, network_manager.root, health_wait=180)

    def held_for_degraded():
        held = (recorded_status(master).get("health") or {}).get("held") or {}
        return (held.get("cluster") or {}).get("state") == "DEGRADED" or proc.poll() is not None

    wait_for(held_for_degraded, 120, "the rollout to hold for the DEGRADED cluster")
    assert proc.poll() is None, proc.communicate()
    assert nodes["node1"].is_active()  # node1 is back: the hold is the Network Manager's word only
    assert changing_commands(nodes["node2"]) == [] and nodes["node2"].state()["installed_version"] == OLD
    cleared = time.time()
    _netmgr("degrade", str(network_manager.root), "--clear")
    out, err = (text.decode() for text in proc.communicate(timeout=240))
    assert proc.returncode == 0, (out, err)
    result = json.loads(out)
    assert result["status"] == "done", result
    assert "held" in err and "DEGRADED" in err, err  # the operator was told
    assert nodes["node2"].state()["installed_version"] == NEW
    # The held event names the frontend and the state.
    rollout = result["rollout"]
    found = event_listener.get_events([(master.id, f"expressware/rolling/{rollout}/held")], after_time=start)
    held = [e.data for e in found if (e.data.get("cluster") or {}).get("state") == "DEGRADED"]
    assert held and held[0]["who"] == [FRONTEND] and held[0]["minion"] == "node2", [e.data for e in found]
    # From the journals: node2 went down only after node1 was back and the Network Manager reported UP again.
    intervals = down_intervals(roots(nodes))
    (flight1,) = intervals["node1"]
    (flight2,) = intervals["node2"]
    assert flight2[0] >= flight1[1], merged_journal(roots(nodes))
    up_again = [t for t in _notified(network_manager, "UP") if t >= cleared]
    assert up_again and flight2[0] >= up_again[0], merged_journal(roots(nodes))


def test_a_cluster_that_stays_degraded_halts_the_rollout_naming_the_frontend(salt_run_cli, nodes, network_manager):
    proc = _degraded_while_node1_is_in_flight(nodes, salt_run_cli, network_manager.root, health_wait=5)
    out, err = (text.decode() for text in proc.communicate(timeout=240))
    assert proc.returncode != 0, (out, err)
    status = _status(salt_run_cli)
    assert status["status"] == "halted" and "cluster health" in status["reason"], status
    assert "DEGRADED" in status["reason"] and FRONTEND in status["reason"], status["reason"]
    halted = status["health"]["halted"]
    assert halted["who"] == [FRONTEND] and halted["cluster"]["state"] == "DEGRADED", halted
    # Nothing else was disrupted: node2 untouched, never down.
    assert changing_commands(nodes["node2"]) == [] and nodes["node2"].is_active()
    assert down_intervals(roots(nodes))["node2"] == [], merged_journal(roots(nodes))
