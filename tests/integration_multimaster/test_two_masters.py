"""One rollout per cluster, whichever of two masters runs it (README, "Two masters").

Master 1 runs ``salt-run rolling.update`` (the real command line); while it builds, master 2's
``salt-run rolling.update`` is refused naming the rollout that holds the cluster, a minion's lease request
(``publish.runner expressware_lease.acquire``, as the state asks) is refused the same through either master, and
master 2 can neither resume that rollout nor mistake its driver for dead. Afterwards master 2 shows master 1's record.
The nodes' journals show one rollout's work only. And when master 1's ``salt-run`` dies, master 2 sees it at once (the
driver lock) and resumes the rollout to its end.
"""

import json
import os
import signal
import subprocess
import time

from expressware_sim import max_nodes_down, merged_journal
from tests.conftest import NEW, changing_commands
from tests.integration.conftest import sia_url
from tests.integration.test_operator_cli import BIN, operator
from tests.integration_multimaster.conftest import NODE_IDS
from tests.shared_code import load

store = load("expressware_store")

UPDATE = [
    "rolling.update",
    "tgt=*",
    f"version={NEW}",
    f"sia={sia_url(NEW)}",
    'applications=["ndbmtd"]',
    "node_timeout=60",
]


def _shared_record(master):
    """The latest rollout in the store both masters share, read as ``master`` reads it, or None."""
    return store.rollout_store(master.config).latest()


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _phase(master, minion):
    record = _shared_record(master) or {"nodes": {}}
    return record["nodes"].get(minion, {}).get("phase")


def _start_update(master):
    """``salt-run rolling.update`` on ``master``, the real command line, in the background (its own session)."""
    return subprocess.Popen(
        [str(BIN / "salt-run"), "-c", str(master.config_dir), "--out=json", *UPDATE],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _commands(nodes, word):
    return [e for node in nodes.values() for e in changing_commands(node) if word in e["command"]]


def test_one_rollout_per_cluster_whichever_master_runs_it(master1, master2, minions, nodes):
    assert store.store_root(master1.config) == store.store_root(master2.config)
    nodes["node2"].set_delays(install=15)  # the rollout outlasts the questions below, asked while it builds
    first = _start_update(master1)
    try:
        # Past its pre-flight: the rollout holds the lease and builds its RPMs on one node.
        _wait_for(
            lambda: (_shared_record(master2) or {}).get("status") == "running" or first.poll() is not None,
            120,
            "master 1's rollout to start",
        )
        record = _shared_record(master2)
        assert record["status"] == "running", (record, first.poll())
        holder = f"rolling:{record['id']}"

        # Master 2's rollout of the same cluster: refused, naming the holder, before anything is touched.
        returncode, refused, stderr = operator(master2, "salt-run", *UPDATE, timeout=120)
        assert returncode == 1, (refused, stderr)
        assert refused["status"] == "refused" and holder in refused["comment"], refused
        answered = time.time()

        # A minion's lease request (the state's, through peer_run) means the same through either master.
        for master in (master1, master2):
            ret = master.salt_cli(timeout=60).run(
                "publish.runner",
                "expressware_lease.acquire",
                'arg=["cluster=default"]',
                "timeout=30",
                minion_tgt="node2",
            )
            assert ret.data["granted"] is False and ret.data["holder"] == holder, (master.id, ret)

        # Master 2 sees master 1's driver alive: it will not resume (take over) a rollout that runs.
        status = master2.salt_run_cli(timeout=60).run("rolling.status").data
        assert status["rollout"] == record["id"] and status["driver"]["alive"] is True, status
        assert status["driver"]["master"] == master1.id, status
        returncode, resumed, stderr = operator(master2, "salt-run", "rolling.resume", timeout=120)
        assert returncode == 1 and f"rollout {record['id']} is running" in resumed["comment"], (resumed, stderr)

        stdout, stderr = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.communicate()
    assert first.returncode == 0, stderr
    done = json.loads(stdout)
    assert done["status"] == "done" and done["rollout"] == record["id"], done

    # One rollout's work on the nodes: one build, each node updated once, one at a time. Master 2 was answered
    # while master 1's rollout ran, past its pre-flight (its record said "running") and before its build ended:
    # not after it (whether the build had started when master 2's salt-run, a second or so, answered depends on
    # how fast the first node's job is published, which is not what this test is about).
    roots = [node.root for node in nodes.values()]
    builds = _commands(nodes, "--build-rpm")
    assert len(builds) == 1, merged_journal(roots)
    assert answered < builds[0]["end"], (builds, answered)
    for node_id in NODE_IDS:
        assert len(_commands({node_id: nodes[node_id]}, "--install-node")) == 1, merged_journal(roots)
        assert nodes[node_id].state()["running_version"] == NEW
    assert max_nodes_down(roots) == 1, merged_journal(roots)

    # Master 2 shows master 1's rollout, and the cluster's lease free.
    returncode, status, stderr = operator(master2, "salt-run", "rolling.status")
    assert returncode == 0, stderr
    assert status["rollout"] == record["id"] and status["status"] == "done", status
    assert status["lease"]["held"] is False


def test_the_other_master_resumes_a_rollout_whose_driver_died(master1, master2, minions, nodes):
    """Master 1's ``salt-run`` dies (SIGKILL) while node1 installs: its driver lock goes with it, master 2 sees the
    driver gone and its ``rolling.resume`` finishes the rollout, node1 not updated twice. node1's job, published by
    master 1, still runs when master 2 resumes: its return goes to master 1 only, so master 2 follows it by asking
    node1 (``saltutil.find_job``) and, once it has ended, looks at the node."""
    for node in nodes.values():
        node.set_delays(build=0.3, install=12)
    first = _start_update(master1)
    try:
        _wait_for(
            lambda: _phase(master2, "node1") in ("installing", "waiting") or first.poll() is not None,
            120,
            "node1 to install",
        )
        record = _shared_record(master2)
        assert record["driver"]["master"] == master1.id and store.driver_alive(record) is True
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
    assert store.driver_alive(_shared_record(master2)) is False
    returncode, status, stderr = operator(master2, "salt-run", "rolling.status")
    assert returncode == 0 and status["driver"]["alive"] is False, (status, stderr)
    assert not nodes["node1"].application_running("ndbmtd")  # node1's job has not ended
    returncode, done, stderr = operator(master2, "salt-run", "rolling.resume", timeout=240)
    assert returncode == 0 and done["status"] == "done" and done["rollout"] == record["id"], (done, stderr)
    assert "node1: its update (job " in stderr and "still runs; following it" in stderr, stderr
    assert "its return did not come here (another master's job?)" in stderr, stderr
    assert _shared_record(master1)["driver"]["master"] == master2.id
    roots = [node.root for node in nodes.values()]
    for node_id in NODE_IDS:
        assert len(_commands({node_id: nodes[node_id]}, "--install-node")) == 1, merged_journal(roots)
        assert nodes[node_id].state()["running_version"] == NEW
    assert max_nodes_down(roots) == 1, merged_journal(roots)
