"""``salt-run rolling.update`` of a target that spans two clusters, on a real master with four minions: each cluster
one node at a time, the clusters side by side, one build per group for the whole fleet; a halt of one cluster with
``halt=fleet``, the fleet's status, and its resume. The simulator journals are the witness."""

import json
import os
import signal

from expressware_sim import down_intervals, max_nodes_down, merged_journal
from tests.conftest import NEW, OLD
from tests.integration.conftest import sia_url
from tests.integration.rollouts import background_update, commands, wait_for
from tests.integration.test_operator_cli import operator
from tests.integration_fleet.conftest import CLUSTERS, NODE_IDS
from tests.shared_code import load

ARGS = [f"version={NEW}", f"sia={sia_url(NEW)}", "applications=[ndbmtd]", "node_timeout=60"]


_store = load("expressware_store")


def _latest_status(master, cluster):
    """The status of the cluster's latest rollout, read from the master's records (a poll starts no salt-run)."""
    rollouts = _store.RolloutStore(os.path.join(master.config["cachedir"], "expressware", "rollouts"))
    record = rollouts.latest(cluster)
    return record and record["status"]


def _rollout_spans(master, fleet):
    """``{cluster: (its rollout's start, its last node's return to active)}`` from the master's records."""
    rollouts = _store.RolloutStore(os.path.join(master.config["cachedir"], "expressware", "rollouts"))
    spans = {}
    for cluster, line in fleet["clusters"].items():
        record = rollouts.load(line["rollout"])
        spans[cluster] = (record["created"], max(node["finished"] for node in record["nodes"].values()))
    return spans


def roots(nodes, names=NODE_IDS):
    return [nodes[name].root for name in names]


def test_a_fleet_walks_each_cluster_one_node_at_a_time_and_the_clusters_side_by_side(master, minions, nodes):
    # The operator's own salt-run, from a shell.
    returncode, data, stderr = operator(master, "salt-run", "rolling.update", "tgt=f*", *ARGS, timeout=300)
    assert returncode == 0, stderr
    assert data["status"] == "done", data
    assert sorted(data["clusters"]) == ["fa", "fb"]
    assert data["total"]["nodes"] == {"active": 4}
    for name in NODE_IDS:
        assert nodes[name].state()["running_version"] == NEW
    # One node down per cluster, never two; the clusters' rollouts ran side by side (they did not queue). Whether a
    # node of each was down at the same moment depends on the load: under load one cluster's two short node updates
    # can end before the other's first begins (seen with the 3006 and 3007 legs side by side).
    for cluster, members in CLUSTERS.items():
        assert max_nodes_down(roots(nodes, members)) == 1, (cluster, merged_journal(roots(nodes, members)))
    assert max_nodes_down(roots(nodes)) <= 2
    spans = _rollout_spans(master, data)
    assert spans["fa"][0] < spans["fb"][1] and spans["fb"][0] < spans["fa"][1], spans
    # One build per (arch, OS, kernel) for the whole fleet: two groups, two builds across four nodes.
    assert sum(len(commands(nodes[n], "--build-rpm")) for n in NODE_IDS) == 2
    for name in NODE_IDS:
        installs = commands(nodes[name], "--install-node")
        assert len(installs) == 1 and "--use-rpms" in installs[0]["command"]
    # The progress lines name the cluster; each cluster has its own rollout and lease, released.
    assert "[fleet fleet-" in stderr and " fa] " in stderr and " fb] " in stderr
    returncode, status, _ = operator(master, "salt-run", "rolling.status")
    assert returncode == 0 and status["fleet"] == data["fleet"] and status["status"] == "done"
    for cluster in CLUSTERS:
        returncode, lease, _ = operator(master, "salt-run", "expressware_lease.show", f"cluster={cluster}")
        assert lease["held"] is False, lease


def test_halt_fleet_stops_every_cluster_and_resume_finishes_the_fleet(master, minions, nodes, salt_run_cli):
    # Every node's installer builds for itself (build=False); fb1's cannot (its kernel headers are missing): it fails
    # at once, before anything stops. fa1, if fa got to it meanwhile, stays in flight (its links do not train) until
    # fb halted: fa is then asked to stop and does so after fa1, before fa2.
    nodes["fb1"].set_fault("build-fails")
    nodes["fa1"].set_fault("never-active")
    proc = background_update(salt_run_cli, "tgt=f*", *ARGS, "build=False", "halt=fleet")
    try:
        wait_for(lambda: _latest_status(master, "fb") == "halted" or proc.poll() is not None, 180, "fb to halt")
        assert proc.poll() is None, proc.communicate()
        nodes["fa1"].clear_faults()  # in flight: it becomes active
        out, err = (text.decode() for text in proc.communicate(timeout=240))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, err
    data = json.loads(out)
    lines = data["clusters"]
    assert data["status"] == "halted" and lines["fb"]["status"] == "halted", data
    # fa stopped after the node it had in flight (fa1, unless fb halted before fa got to it); fa2 not touched.
    assert lines["fa"]["status"] == "aborted", lines
    fa1_updated = bool(commands(nodes["fa1"], "--install-node"))
    assert nodes["fa1"].state()["running_version"] == (NEW if fa1_updated else OLD)
    assert commands(nodes["fa2"], "--install-node") == [] and nodes["fa2"].state()["running_version"] == OLD
    assert "halt=fleet: cluster fa stops after its node in flight" in err
    assert max_nodes_down(roots(nodes, CLUSTERS["fa"])) == 1 and max_nodes_down(roots(nodes, CLUSTERS["fb"])) == 1

    status = salt_run_cli.run("rolling.status", f"rollout={data['fleet']}").data
    assert status["total"]["clusters"] == 2
    assert status["clusters"]["fb"]["counts"].get("failed") == 1, status
    assert "fb1" in status["clusters"]["fb"]["reason"], status

    nodes["fb1"].clear_faults()
    ret = salt_run_cli.run("rolling.resume", f"rollout={data['fleet']}", _timeout=300)
    assert ret.returncode == 0, ret.stderr
    assert ret.data["status"] == "done", ret.data
    assert all(nodes[n].state()["running_version"] == NEW for n in NODE_IDS)
    assert len(commands(nodes["fa1"], "--install-node")) == 1  # not redone when it was done before
    for members in CLUSTERS.values():
        assert max_nodes_down(roots(nodes, members)) == 1


def _after(nodes, first, then):
    """Every node of cluster ``first`` was active again before any node of cluster ``then`` went down."""
    spans = down_intervals(roots(nodes))
    ends = [end for m in CLUSTERS[first] for _, end in spans.get(m, [])]
    starts = [start for m in CLUSTERS[then] for start, _ in spans.get(m, [])]
    return ends and starts and None not in ends and max(ends) < min(starts)


def test_the_fleet_canary_completes_before_the_other_clusters_start(master, minions, nodes, salt_run_cli):
    ret = salt_run_cli.run("rolling.update", "tgt=f*", *ARGS, "canary=1", _timeout=300)
    assert ret.returncode == 0, ret.stderr
    assert ret.data["status"] == "done" and ret.data["waves"] == [["fa"], ["fb"]], ret.data
    assert all(nodes[n].state()["running_version"] == NEW for n in NODE_IDS)
    # The canary cluster (the first by name) was done, every node back, before the other one's first node went down.
    assert _after(nodes, "fa", "fb"), merged_journal(roots(nodes))


def test_a_wave_that_fails_holds_the_next_and_resume_walks_them_in_order(master, minions, nodes, salt_run_cli):
    # waves: fb's nodes first, then the rest. fb1 cannot build (build=False: every node builds for itself): fb halts
    # and the second wave (fa) never starts; resumed once fb1 can build, fb ends before fa begins.
    nodes["fb1"].set_fault("build-fails")
    ret = salt_run_cli.run("rolling.update", "tgt=f*", *ARGS, "build=False", 'waves=["fb*", "*"]', _timeout=300)
    assert ret.returncode == 1, ret.stderr
    lines = ret.data["clusters"]
    assert ret.data["status"] == "halted" and lines["fb"]["status"] == "halted", ret.data
    assert lines["fa"]["status"] == "not started" and lines["fa"]["rollout"] is None, lines
    for name in CLUSTERS["fa"]:
        assert commands(nodes[name], "--") == [], name  # the gate held: not even a pre-flight change on fa
        assert nodes[name].state()["running_version"] == OLD

    nodes["fb1"].clear_faults()
    ret = salt_run_cli.run("rolling.resume", f"rollout={ret.data['fleet']}", _timeout=300)
    assert ret.returncode == 0, ret.stderr
    assert ret.data["status"] == "done", ret.data
    assert all(nodes[n].state()["running_version"] == NEW for n in NODE_IDS)
    assert _after(nodes, "fb", "fa"), merged_journal(roots(nodes))


def test_bad_fleet_arguments_are_refused_before_anything(master, minions, nodes, salt_run_cli):
    for extra, message in (
        (["parallel=0"], "parallel must be a whole number of clusters >= 1"),
        (["halt=everything"], "halt must be 'cluster' or 'fleet'"),
        (["waves=[[fa1]]"], "fb are in no wave"),
        (["frontend=fa1"], "frontend is for one cluster"),
    ):
        ret = salt_run_cli.run("rolling.update", "tgt=f*", *ARGS, *extra)
        assert ret.returncode != 0 and message in json.dumps(ret.data), (extra, ret.data)
    for name in NODE_IDS:
        assert commands(nodes[name], "--") == []
