"""Journal transitions with true times, cluster analysis helpers, concurrency and the CLI."""

from __future__ import annotations

import concurrent.futures as cf
import json
import time

import pytest

from expressware_sim import Node, down_intervals, max_nodes_down, merged_journal, read_journal


def events(node, *names):
    return [e for e in read_journal(node.root) if e.get("event") in names]


def test_created_event(sim_node):
    up = sim_node("up")
    down = sim_node("down", running=False, version="5.26.0-d")
    (c1,) = events(up, "created")
    (c2,) = events(down, "created")
    assert (c1["node"], c1["active"], c1["version"]) == ("up", True, "5.25.2")
    assert (c2["node"], c2["active"], c2["version"]) == ("down", False, "5.26.0-d")
    assert down_intervals([up.root, down.root]) == {"up": [], "down": [(c2["time"], None)]}


def test_transitions_carry_true_times(sim_node, sim_run):
    node = sim_node(link_training=0.2)
    sim_run([node.dis_services, "stop"])
    sim_run([node.dis_services, "start"])
    started_at = node.state()["started_at"]
    time.sleep(0.6)  # nobody looks while the links train ... then observe much later
    journal = read_journal(node.root)
    stop_cmd, start_cmd = [e for e in journal if e.get("command", "").startswith("dis_services")]
    (down,) = [e for e in journal if e.get("event") == "down"]
    (active,) = [e for e in journal if e.get("event") == "active"]
    assert stop_cmd["time"] <= down["time"] <= stop_cmd["end"]
    assert start_cmd["time"] <= started_at <= start_cmd["end"]
    assert active["time"] == pytest.approx(started_at + 0.2, abs=1e-6)
    assert active["time"] < time.time() - 0.3  # not the time it was observed
    assert [e["time"] for e in journal] == sorted(e["time"] for e in journal)
    for entry in journal:
        assert entry["node"] == "node1"
    assert stop_cmd["exit"] == 0 and stop_cmd["outcome"] == "ok"
    assert down_intervals([node.root]) == {"node1": [(down["time"], active["time"])]}


def test_fault_transitions(sim_node, sim_run):
    node = sim_node(link_training=0.05)
    node.set_fault("never-active")
    assert node.is_active()  # takes effect at the next start
    sim_run([node.dis_services, "restart"])
    time.sleep(0.1)
    assert not node.is_active()
    t_clear = time.time()
    node.set_fault("never-active", on=False)
    down = events(node, "down")
    active = events(node, "active")
    assert len(down) == 1 and len(active) == 1
    assert active[0]["time"] >= t_clear  # active again when the fault was cleared, not earlier
    faults = events(node, "fault")
    assert [(f["fault"], f["on"]) for f in faults] == [("never-active", True), ("never-active", False)]


def test_max_nodes_down_sequential_and_overlapping(sim_node, sim_run, sim_wait):
    nodes = [sim_node(f"n{i}", link_training=0.1) for i in range(1, 4)]
    roots = [n.root for n in nodes]
    for node in nodes:  # one at a time, waiting for active before the next one
        sim_run([node.dis_services, "restart"])
        assert sim_wait(lambda node=node: sim_run([node.dis_diag]).returncode == 0)
    assert max_nodes_down(roots) == 1
    intervals = down_intervals(roots)
    assert sorted(intervals) == ["n1", "n2", "n3"]
    assert all(len(v) == 1 and v[0][1] is not None for v in intervals.values())
    # now two at once; the second is still down (unfinished interval extends to now)
    sim_run([nodes[0].dis_services, "stop"])
    sim_run([nodes[1].dis_services, "stop"])
    assert max_nodes_down(roots) == 2
    assert down_intervals(roots)["n2"][-1][1] is None
    merged = merged_journal(roots)
    assert [e["time"] for e in merged] == sorted(e["time"] for e in merged)
    assert {e["node"] for e in merged} == {"n1", "n2", "n3"}


def test_many_nodes_updated_concurrently(sim_node, sim_sia, sim_run, sim_wait):
    nodes = [sim_node(f"n{i}", install=1.5, link_training=0.1) for i in range(1, 7)]
    sia = sim_sia("5.26.0")
    with cf.ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        results = list(pool.map(lambda n: sim_run(["sh", sia, "--install-node", "--batch"], cwd=n.workdir), nodes))
    assert [r.returncode for r in results] == [0] * len(nodes), [r.stderr for r in results]
    assert sim_wait(lambda: all(n.is_active() for n in nodes))
    assert {n.state()["running_version"] for n in nodes} == {"5.26.0"}
    # They were down together (how many at once depends on how fast a loaded machine starts six installers).
    assert max_nodes_down([n.root for n in nodes]) >= 2
    for node in nodes:
        for line in node.journal_file.read_text().splitlines():
            json.loads(line)


# --------------------------------------------------------------------------- CLI


def test_cli_node_lifecycle(tmp_path, sim_cli, sim_run, sim_wait):
    root = tmp_path / "n1"
    r = sim_cli(
        "node",
        "create",
        root,
        "--name",
        "alpha",
        "--version",
        "5.26.0-d",
        "--product",
        "MX",
        "--stopped",
        "--link-training",
        "0.05",
        "--reboot",
        "0.2",
        "--build",
        "0",
        "--install",
        "0",
    )
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    assert (created["name"], created["product"], created["installed_version"]) == ("alpha", "MX", "5.26.0-d")
    assert not created["active"] and created["running_version"] is None
    r = sim_cli("node", "show", root)
    shown = json.loads(r.stdout)
    assert shown["minion_config"]["expressware"]["prefix"] == str(root / "opt/DIS")
    assert shown["delays"] == {"build": 0.0, "install": 0.0, "link_training": 0.05, "reboot": 0.2}

    r = sim_cli("fault", root, "stop-blocked")
    assert r.returncode == 0 and json.loads(r.stdout)["stop-blocked"] is True
    assert sim_cli("fault", root, "stop-blocked", "--clear").returncode == 0
    assert not Node(root).state()["faults"]["stop-blocked"]
    assert sim_cli("fault", root, "never-active").returncode == 0
    assert sim_cli("fault", root, "all", "--clear").returncode == 0
    assert not any(Node(root).state()["faults"].values())

    r = sim_cli("delay", root, "--link-training", "0.1", "--reboot", "0.15")
    assert r.returncode == 0 and json.loads(r.stdout)["link_training"] == 0.1

    r = sim_cli("reboot", root)
    assert r.returncode == 0 and "rebooting" in r.stdout
    assert Node(root).state()["rebooting"]
    assert sim_wait(lambda: sim_run([Node(root).dis_diag]).returncode == 0)
    assert "Dolphin MX 5.26.0-d is running." in sim_run([Node(root).dis_services, "status"]).stdout

    r = sim_cli("sia", tmp_path / "sias", "5.27.0")
    assert r.returncode == 0 and r.stdout.strip() == str(tmp_path / "sias" / "Dolphin_eXpressWare-5.27.0.sh")
    r = sim_cli("sia", tmp_path / "sias", "5.27.1", "--corrupt")
    sia = r.stdout.strip()
    r = sim_run(["sh", sia, "--install-node"], cwd=root)
    assert r.returncode == 1 and "Error in checksums" in r.stderr


def test_cli_cluster_and_journal_check(tmp_path, sim_cli, sim_run, sim_wait):
    r = sim_cli("cluster", tmp_path / "c", "--nodes", "3", "--version", "5.25.2", "--link-training", "0.05")
    assert r.returncode == 0, r.stderr
    config = json.loads(r.stdout)
    assert sorted(config) == ["node1", "node2", "node3"]
    assert config["node2"]["expressware"] == {
        "prefix": str(tmp_path / "c/node2/opt/DIS"),
        "rpm": str(tmp_path / "c/node2/usr/bin/rpm"),
        "workdir": str(tmp_path / "c/node2/var/cache/expressware"),
    }
    roots = [tmp_path / "c" / n for n in ("node1", "node2", "node3")]
    for root in roots:
        sim_run([Node(root).dis_services, "restart"])
        assert sim_wait(lambda root=root: Node(root).is_active())
    r = sim_cli("journal", *roots, "--check-one-down")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len([e for e in lines if e.get("event") == "down"]) == 3
    sim_run([Node(roots[0]).dis_services, "stop"])
    sim_run([Node(roots[1]).dis_services, "stop"])
    r = sim_cli("journal", *roots, "--check-one-down")
    assert r.returncode == 1 and "2 nodes" in r.stderr
    assert sim_cli("journal", *roots).returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ["node", "create", "{tmp}/x", "--version", "5.2"],
        ["node", "create", "{tmp}/x", "--product", "QX"],
        ["node", "create", "{tmp}/x", "--role", "boss"],
        ["node", "show", "{tmp}"],
        ["fault", "{node}", "melted"],
        ["fault", "{node}", "all"],
        ["delay", "{node}", "--reboot", "-1"],
        ["reboot", "{tmp}"],
        ["sia", "{tmp}", "latest"],
        ["journal", "{tmp}"],
        ["cluster", "{tmp}/c", "--version", "x"],
        ["frobnicate"],
    ],
)
def test_cli_bad_input(tmp_path, sim_cli, sim_node, args):
    node = sim_node()
    args = [a.replace("{tmp}", str(tmp_path)).replace("{node}", str(node.root)) for a in args]
    r = sim_cli(*args)
    assert r.returncode != 0
    assert r.stderr.strip() and "Traceback" not in r.stderr
