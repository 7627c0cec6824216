"""The driver's cluster health gate on the simulated cluster (tests/unit/simulation.py), faults off: a member that
fails on its own while another node is in flight makes the next node wait; one that stays down halts the rollout,
naming it, before anything else is disrupted."""

import copy
import random

from tests.unit import simulation as sim


def _rollout(outage_length, health_wait):
    cluster = sim.Cluster(random.Random(7), ["node1", "node2", "node3"], faults=False)
    records, leases, salt = sim.Records(cluster), sim.Leases(), sim.FakeSalt(cluster)
    records.salt = salt
    args = copy.deepcopy(sim.ARGS)
    args.update(tgt=["node1", "node2"], tgt_type="list", cluster_members=["node3"], health_wait=health_wait)
    downs = []
    go_down = cluster.go_down

    def watched(node):
        downs.append((cluster.now, node.name, {n.name for n in cluster.nodes.values() if n.failed_since is not None}))
        go_down(node)

    cluster.go_down = watched
    # node3 fails on its own as soon as node1 is down (node1 in flight), for outage_length seconds.
    original = cluster.go_down

    def first_down(node):
        original(node)
        if node.name == "node1":
            cluster.outage("node3", outage_length)

    cluster.go_down = first_down
    driver = sim.driver_lib.Driver(
        salt,
        records,
        leases,
        args,
        staging=sim.FakeStaging(cluster),
        identity={"pid": 1, "host": "master"},
    )
    driver.resolve_members = lambda expr, name: list(expr)
    result = driver.start("r1")
    return result, records.load("r1"), salt.fired, downs


def test_the_next_node_waits_for_a_member_that_failed_and_goes_on_when_it_is_back():
    result, record, fired, downs = _rollout(outage_length=20, health_wait=300)
    assert result["status"] == "done", result
    assert [name for _, name, _ in downs] == ["node1", "node2"]
    assert downs[1][2] == set(), f"node2 was disrupted while {downs[1][2]} was down"
    held = [data for tag, data in fired if tag.endswith("/held")]
    assert held and held[0]["who"] == ["node3"] and held[0]["minion"] == "node2", fired
    assert record["health"]["held"] is None  # the hold ended


def test_a_member_that_stays_down_halts_the_rollout_naming_it_and_nothing_else_is_disrupted():
    result, record, fired, downs = _rollout(outage_length=10_000, health_wait=30)
    assert result["status"] == "halted" and "node3" in record["reason"], record["reason"]
    assert [name for _, name, _ in downs] == ["node1"]
    assert record["nodes"]["node2"]["phase"] == "pending"
    assert record["health"]["halted"]["who"] == ["node3"] and record["health"]["halted"]["minion"] == "node2"
    halted = [data for tag, data in fired if tag.endswith("/halted")]
    assert halted and "node3" in halted[0]["reason"]


def test_a_further_member_down_refuses_the_preflight():
    cluster = sim.Cluster(random.Random(7), ["node1", "node2", "node3"], faults=False)
    cluster.nodes["node3"].active = False
    records, leases, salt = sim.Records(cluster), sim.Leases(), sim.FakeSalt(cluster)
    records.salt = salt
    args = dict(copy.deepcopy(sim.ARGS), tgt=["node1", "node2"], tgt_type="list", cluster_members=["node3"])
    driver = sim.driver_lib.Driver(salt, records, leases, args, staging=sim.FakeStaging(cluster))
    result = driver.start("r1")
    assert result["status"] == "refused" and "node3" in result["problems"], result
    assert not any(n.installs or n.down for n in cluster.nodes.values())
