"""``salt-run rolling.update ... frontend=<minion>``: the Cluster Management Node (frontend).

After every Cluster Node is updated and active again, the runner installs the
frontend packages (``Dolphin-NetworkManager``, ``Dolphin-NetworkHosts``) on the
frontend with the installer's ``--install-frontend``. Here node3 is recreated as a
simulated node of role ``frontend`` (it keeps its minion) and the rollout is driven
with ``salt-run`` as an operator would. The witnesses are the simulated nodes
themselves (installed packages) and their journals (when each node came back
active, when ``--install-frontend`` ran), plus the record (``rolling.status``).
"""

import pytest

from expressware_sim import down_intervals, max_nodes_down, merged_journal
from tests.conftest import NEW, OLD, changing_commands, fresh_node
from tests.integration.conftest import KERNELS
from tests.integration.rollouts import (  # noqa: F401 (fixtures)
    commands,
    data_nodes,
    no_leftover_lease,
    roots,
    update_args,
)

FRONTEND = "node3"
#: No notification script on this frontend: its cluster state is not checked (test_cluster_gate.py checks it).
FRONTEND_ARGS = {"frontend": FRONTEND, "cluster_states": "unchecked"}
#: The Cluster Nodes of the rollouts below; the frontend is a separate machine.
CLUSTER = ("node1", "node2")
#: What ``--install-frontend`` installs (simulator role ``frontend``).
FRONTEND_PACKAGES = ("Dolphin-NetworkManager", "Dolphin-NetworkHosts")
NODE_PACKAGES = ("Dolphin-PX", "Dolphin-SISCI", "Dolphin-SuperSockets")
#: The record's frontend entry after a successful --install-frontend.
FRONTEND_DONE = {"minion": FRONTEND, "phase": "active", "error": None, "before": OLD, "after": NEW, "note": None}


@pytest.fixture
def frontend(nodes):
    """node3 becomes the Cluster Management Node: node packages plus the frontend packages, all on OLD.

    (After the autouse fixtures, which give every node a fresh stack running ``ndbmtd``.)
    """
    return fresh_node(
        nodes[FRONTEND].root, FRONTEND, kernel=KERNELS[FRONTEND], role="frontend", applications=["ndbmtd"]
    )


def package_versions(node, names):
    packages = node.state()["packages"]
    return {name: packages[name]["version"] for name in names}


def became_active_after_update(node):
    """When ``node`` came back active after its ``--install-node`` (asserts that it did)."""
    installs = commands(node, "--install-node")
    assert len(installs) == 1 and installs[0]["outcome"] == "ok", installs
    back = [
        e["time"]
        for e in node.journal()
        if e.get("event") == "active" and e["version"] == NEW and e["time"] >= installs[0]["end"]
    ]
    assert back, f"{node.name} never came back active on {NEW}: {node.journal()}"
    return back[-1]


def frontend_install(node, outcome):
    """The one ``--install-frontend`` run on ``node``, with the expected outcome."""
    runs = commands(node, "--install-frontend")
    assert len(runs) == 1, runs
    assert runs[0]["outcome"] == outcome and runs[0]["sia_version"] == NEW, runs[0]
    return runs[0]


def assert_frontend_installed_after_the_cluster(nodes, fe, cluster=CLUSTER):
    run = frontend_install(fe, "ok")
    installed = [e for e in fe.journal() if e.get("event") == "installed" and e["target"] == "frontend"]
    assert [(e["version"], sorted(e["packages"])) for e in installed] == [(NEW, sorted(FRONTEND_PACKAGES))]
    for node_id in cluster:
        active = became_active_after_update(nodes[node_id])
        # Strictly after: the runner saw the node active before it published the frontend's job.
        assert active < run["time"] and active < installed[0]["time"], (
            node_id,
            active,
            run,
            merged_journal(roots(nodes)),
        )


def test_frontend_is_updated_after_every_node(salt_run_cli, salt_cli, nodes, frontend):
    ret = salt_run_cli.run("rolling.update", *update_args(tgt="node[12]", **FRONTEND_ARGS), _timeout=300)
    assert ret.returncode == 0, ret.stderr
    assert ret.data["status"] == "done", ret.data
    assert ret.data["frontend"] == FRONTEND_DONE
    assert "updating the frontend node3 (--install-frontend)" in ret.stderr

    # The Cluster Nodes: updated one at a time, active on the target.
    for node_id in CLUSTER:
        assert ret.data["nodes"][node_id]["phase"] == "active"
        assert nodes[node_id].state()["running_version"] == NEW
    assert max_nodes_down(roots(nodes)) == 1
    # The frontend: its frontend packages on the target, installed once, after every node was active again.
    assert package_versions(frontend, FRONTEND_PACKAGES) == dict.fromkeys(FRONTEND_PACKAGES, NEW)
    assert frontend.state()["frontend_version"] == NEW
    assert_frontend_installed_after_the_cluster(nodes, frontend)
    # ... and nothing else happened to it: not a target, so its node stack was not touched.
    assert package_versions(frontend, NODE_PACKAGES) == dict.fromkeys(NODE_PACKAGES, OLD)
    assert commands(frontend, "--install-node") == [] and commands(frontend, "dis_services") == []
    assert down_intervals([frontend.root]).get(FRONTEND, []) == []
    assert frontend.is_active() and frontend.application_running("ndbmtd") is True
    # What Salt reads on the frontend agrees.
    seen = salt_cli.run("expressware.packages", minion_tgt=FRONTEND)
    assert {name: seen.data[name] for name in FRONTEND_PACKAGES} == dict.fromkeys(FRONTEND_PACKAGES, NEW), seen

    status = salt_run_cli.run("rolling.status")
    assert status.returncode == 0, status
    assert status.data["rollout"] == ret.data["rollout"] and status.data["status"] == "done"
    assert status.data["frontend"] == FRONTEND_DONE
    assert status.data["lease"]["held"] is False
    messages = [entry["message"] for entry in status.data["log"]]
    assert messages.index("frontend node3 updated") < messages.index("done"), messages


def test_failing_frontend_installer_halts_then_resume_finishes(salt_run_cli, nodes, frontend):
    # The frontend's installer builds its RPMs itself, and the kernel headers are missing.
    frontend.set_fault("build-fails")
    ret = salt_run_cli.run("rolling.update", *update_args(tgt="node[12]", **FRONTEND_ARGS), _timeout=300)
    assert ret.returncode == 1, ret
    assert ret.data["status"] == "halted", ret.data
    assert ret.data["reason"].startswith("frontend node3 failed: "), ret.data["reason"]
    entry = ret.data["frontend"]
    assert entry["minion"] == FRONTEND and entry["phase"] == "failed", entry
    assert "--install-frontend failed with exit status 1" in entry["error"], entry
    assert "kernel header files" in entry["error"] and "kernel-devel" in entry["error"], entry
    # It failed after the whole cluster was updated, and changed nothing on the frontend.
    for node_id in CLUSTER:
        assert ret.data["nodes"][node_id]["phase"] == "active"
        became_active_after_update(nodes[node_id])
    frontend_install(frontend, "failed")
    assert package_versions(frontend, FRONTEND_PACKAGES) == dict.fromkeys(FRONTEND_PACKAGES, OLD)
    assert not [e for e in frontend.journal() if e.get("event") == "installed"]

    status = salt_run_cli.run("rolling.status")
    assert status.data["rollout"] == ret.data["rollout"]
    assert status.data["status"] == "halted" and status.data["reason"] == ret.data["reason"]
    assert status.data["frontend"] == entry
    assert status.data["lease"]["held"] is True  # halted: the cluster stays taken until the operator acts

    # The operator installs the kernel headers and resumes: only the frontend step runs.
    frontend.clear_faults()
    ret = salt_run_cli.run("rolling.resume", _timeout=300)
    assert ret.returncode == 0, ret.stderr
    assert ret.data["status"] == "done"
    assert ret.data["frontend"] == FRONTEND_DONE
    assert package_versions(frontend, FRONTEND_PACKAGES) == dict.fromkeys(FRONTEND_PACKAGES, NEW)
    for node_id in CLUSTER:
        assert len(commands(nodes[node_id], "--install-node")) == 1  # finished nodes are not redone
    assert [run["outcome"] for run in commands(frontend, "--install-frontend")] == ["failed", "ok"]
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False


def test_frontend_that_is_also_a_cluster_node(salt_run_cli, nodes, frontend):
    """The frontend is also a Cluster Node (docs/simulator.md): updated in its turn, then ``--install-frontend``."""
    ret = salt_run_cli.run("rolling.update", *update_args(**FRONTEND_ARGS), _timeout=300)
    assert ret.returncode == 0, ret.data
    assert ret.data["status"] == "done"
    assert [ret.data["nodes"][n]["phase"] for n in nodes] == ["active"] * 3
    assert ret.data["frontend"] == FRONTEND_DONE
    assert package_versions(frontend, NODE_PACKAGES + FRONTEND_PACKAGES) == dict.fromkeys(
        NODE_PACKAGES + FRONTEND_PACKAGES, NEW
    )
    assert_frontend_installed_after_the_cluster(nodes, frontend, cluster=tuple(nodes))
    assert max_nodes_down(roots(nodes)) == 1


def test_rerun_leaves_an_up_to_date_frontend_alone(salt_run_cli, nodes, frontend):
    """A re-run of a finished rollout changes nothing and succeeds, frontend included."""
    for node_id in CLUSTER:
        fresh_node(nodes[node_id].root, node_id, version=NEW, kernel=KERNELS[node_id], applications=["ndbmtd"])
    fe = fresh_node(
        frontend.root, FRONTEND, version=NEW, kernel=KERNELS[FRONTEND], role="frontend", applications=["ndbmtd"]
    )
    ret = salt_run_cli.run("rolling.update", *update_args(tgt="node[12]", **FRONTEND_ARGS), _timeout=120)
    assert commands(fe, "--install-frontend") == []
    assert ret.returncode == 0, ret.data
    assert ret.data["status"] == "done" and ret.data["counts"] == {"skipped": 2}
    assert ret.data["frontend"] == {
        "minion": FRONTEND,
        "phase": "skipped",
        "error": None,
        "before": NEW,
        "after": NEW,
        "note": "already on the target",
    }


def test_frontend_that_is_no_frontend_is_refused_at_preflight(salt_run_cli, nodes):
    """node3 here is an ordinary Cluster Node (no frontend packages): refused before anything is touched."""
    before = {node_id: changing_commands(node) for node_id, node in nodes.items()}
    ret = salt_run_cli.run("rolling.update", *update_args(tgt="node[12]", **FRONTEND_ARGS), _timeout=120)
    assert ret.returncode == 1, ret
    assert ret.data["status"] == "refused"
    assert ret.data["problems"] == {
        FRONTEND: "frontend: not a Cluster Management Node: no Dolphin-NetworkManager "
        "or Dolphin-NetworkHosts package is installed"
    }, ret.data
    assert {node_id: changing_commands(node) for node_id, node in nodes.items()} == before  # nothing touched
    assert all(node.is_active() and node.application_running("ndbmtd") for node in nodes.values())
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False
