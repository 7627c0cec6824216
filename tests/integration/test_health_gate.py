"""The cluster health gate on real daemons: no node is disrupted while another member of its cluster is down,
whoever took it down (issue 11). "Down" is read from the simulator's journals of every node."""

import json
import subprocess
import time

import pytest

from expressware_sim import down_intervals, merged_journal
from tests.conftest import NEW, OLD, changing_commands
from tests.integration.rollouts import (  # noqa: F401  # pylint: disable=unused-import
    background_update,
    data_nodes,
    no_leftover_lease,
    recorded_status,
    roots,
    update_args,
    wait_for,
)


def _services(node, action):
    """Something else than the rollout stops or starts the node's stack (an operator, a crash)."""
    if action == "stop":
        node.set_application("ndbmtd", False)  # it holds SuperSockets: stopped first
    done = subprocess.run([str(node.dis_services), action], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done


@pytest.fixture
def beacon_on_node3(salt_cli):
    """node3 reports its transitions (the ``expressware`` beacon): the runner's live view follows them."""
    ret = salt_cli.run("beacons.add", "expressware", "[{'interval': 1}]", minion_tgt="node3")
    assert ret.returncode == 0 and ret.data["result"] is True, ret
    yield
    salt_cli.run("beacons.delete", "expressware", minion_tgt="node3")


def _status(salt_run_cli):
    return salt_run_cli.run("rolling.status", _timeout=60).data or {}


def _held_by(master, member):
    held = (recorded_status(master).get("health") or {}).get("held") or {}
    return member in (held.get("who") or [])


def _node3_fails_while_node1_is_in_flight(nodes, salt_run_cli, health_wait):
    """A rollout of node1 and node2 (node3 a further member of the cluster); node3 fails on its own while node1 is
    down. Returns the ``salt-run`` process once the rollout holds for node3."""
    nodes["node1"].set_delays(install=6)  # node1's flight lasts: node3's beacon tells the runner meanwhile
    proc = background_update(
        salt_run_cli, *update_args(tgt=["node1", "node2"], cluster_members="node3", health_wait=health_wait)
    )
    wait_for(lambda: not nodes["node1"].is_active() or proc.poll() is not None, 120, "node1 to go down")
    assert proc.poll() is None, proc.communicate()
    _services(nodes["node3"], "stop")
    return proc


def test_a_member_that_fails_and_comes_back_makes_the_next_node_wait(master, salt_run_cli, nodes, beacon_on_node3):
    proc = _node3_fails_while_node1_is_in_flight(nodes, salt_run_cli, health_wait=180)
    wait_for(lambda: _held_by(master, "node3") or proc.poll() is not None, 120, "the rollout to hold for node3")
    assert proc.poll() is None, proc.communicate()
    # Held: node2 untouched while node3 is down.
    assert changing_commands(nodes["node2"]) == [] and nodes["node2"].state()["installed_version"] == OLD
    _services(nodes["node3"], "start")
    out, err = (text.decode() for text in proc.communicate(timeout=240))
    assert proc.returncode == 0, (out, err)
    result = json.loads(out)
    assert result["status"] == "done", result
    assert "node3" in err and "held" in err, err  # the operator was told who held it
    assert nodes["node2"].state()["installed_version"] == NEW
    # From the journals of every node: node2 went down only after node3 was back (and node1 was back).
    intervals = down_intervals(roots(nodes))
    (outage,) = intervals["node3"]
    (flight1,) = intervals["node1"]
    (flight2,) = intervals["node2"]
    assert outage[1] is not None and flight2[0] >= outage[1], merged_journal(roots(nodes))
    assert flight2[0] >= flight1[1], merged_journal(roots(nodes))


def test_a_member_that_stays_down_halts_the_rollout_naming_it(
    salt_run_cli, nodes, beacon_on_node3, master, event_listener
):
    start = time.time()
    proc = _node3_fails_while_node1_is_in_flight(nodes, salt_run_cli, health_wait=5)
    out, err = (text.decode() for text in proc.communicate(timeout=240))
    assert proc.returncode != 0, (out, err)
    status = _status(salt_run_cli)
    assert status["status"] == "halted" and "node3" in status["reason"] and "cluster health" in status["reason"]
    assert "node3" in status["health"]["halted"]["who"], status["health"]
    # Nothing else was disrupted: node2 untouched, node3 down by the operator's hand only.
    assert changing_commands(nodes["node2"]) == [] and nodes["node2"].is_active()
    intervals = down_intervals(roots(nodes))
    assert intervals["node2"] == [], merged_journal(roots(nodes))
    # The held and halted events name the member.
    rollout = status["rollout"]
    for what in ("held", "halted"):
        found = event_listener.wait_for_events(
            [(master.id, f"expressware/rolling/{rollout}/{what}")], after_time=start, timeout=30
        )
        assert found.found_all_events, what
        data = next(iter(found.matches)).data
        assert "node3" in json.dumps(data), data


def test_a_member_down_before_the_rollout_refuses_it(salt_run_cli, nodes):
    _services(nodes["node3"], "stop")
    ret = salt_run_cli.run("rolling.update", *update_args(tgt=["node1", "node2"], cluster_members="node3"))
    assert ret.returncode != 0 and ret.data["status"] == "refused", ret
    assert "node3" in ret.data["problems"], ret.data
    assert all(changing_commands(nodes[n]) == [] for n in ("node1", "node2"))


@pytest.fixture
def cluster_grain(salt_cli):
    """Every node says which cluster it belongs to (grain ``expressware:cluster``), in the master's cache."""
    ret = salt_cli.run("grains.setval", "expressware", json.dumps({"cluster": "default"}), minion_tgt="*")
    assert ret.returncode == 0, ret
    salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")
    yield
    salt_cli.run("grains.delkey", "expressware", "force=True", minion_tgt="*")
    salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")


def test_highstate_with_one_member_down_defers_every_node(salt_cli, salt_run_cli, nodes, cluster_grain):
    _services(nodes["node3"], "stop")
    before = {n: changing_commands(nodes[n]) for n in nodes}
    pillar = "pillar=" + json.dumps({"expressware": {"version": NEW, "applications": ["ndbmtd"], "lease_wait": 2}})
    ret = salt_cli.run("state.apply", "expressware", pillar, minion_tgt="*", _timeout=240)
    for node_id in ("node1", "node2"):
        (result,) = [v for k, v in ret.data[node_id].items() if k.startswith("expressware_|-")]
        assert result["result"] is False and "Deferred" in result["comment"], result
        assert "cluster health" in result["comment"] and "node3" in result["comment"], result
        assert nodes[node_id].state()["installed_version"] == OLD
    assert {n: changing_commands(nodes[n]) for n in nodes} == before
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False


def test_another_minion_saying_on_the_bus_that_a_down_member_is_back_releases_nothing(
    salt_run_cli, nodes, beacon_on_node3, master, minions
):
    """Anything a minion sends is untrusted. node3 fails while node1 is in flight; node2, the next node, then fires
    what node3 would say when back (``expressware/node/active`` and node3's beacon ``active``) in the batched form of
    a minion event, whose data it writes itself (``id`` node3). The rollout asks node3 directly, keeps holding on its
    answer and halts naming it after health_wait: node2 is never touched."""
    proc = _node3_fails_while_node1_is_in_flight(nodes, salt_run_cli, health_wait=20)
    wait_for(lambda: _held_by(master, "node3") or proc.poll() is not None, 120, "the rollout to hold for node3")
    assert proc.poll() is None, proc.communicate()
    claimed = {"state": "active", "active": True, "installed": OLD, "running": OLD, "reasons": []}
    events = [
        {"tag": "expressware/node/active", "data": {"id": "node3", "data": {"node_state": claimed}}},
        {"tag": "salt/beacon/node3/expressware/active", "data": {"id": "node3", "node_state": claimed}},
    ]
    call = minions[1].salt_call_cli(timeout=60)  # node2
    ret = call.run("event.fire_master", "{}", "expressware/node/active", f"preload={json.dumps({'events': events})}")
    assert ret.returncode == 0 and ret.data is True, ret
    out, err = (text.decode() for text in proc.communicate(timeout=240))
    assert proc.returncode != 0, (out, err)
    status = _status(salt_run_cli)
    assert status["status"] == "halted" and "node3" in status["reason"] and "cluster health" in status["reason"]
    assert "node3 is inactive" in status["health"]["halted"]["why"], status["health"]
    assert changing_commands(nodes["node2"]) == [] and nodes["node2"].state()["installed_version"] == OLD
    intervals = down_intervals(roots(nodes))
    assert intervals["node2"] == [] and intervals["node3"][0][1] is None, merged_journal(roots(nodes))
