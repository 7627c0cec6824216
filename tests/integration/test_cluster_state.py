"""The Network Manager's notification script puts ``expressware/cluster/state`` on a real master's bus.

node3 becomes the Cluster Management Node (a simulated frontend; it keeps its minion).
``salt node3 state.apply expressware.notify`` (the real command line) installs the
formula's script and its configuration; the simulated Network Manager, run as its
own process (``python -m expressware_sim netmgr run``), watches node1 and node2 and
runs the installed script on every change, handing over the state in an
environment variable and the node as the first argument, as configured. The script
calls the real ``salt-call event.send``. The witnesses: the events on the master's
bus (state, node, counter, sent by node3), the frontend's journal, and the health
gate's view fed with exactly those events.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from expressware_sim import read_journal
from expressware_sim.netmgr import SCRIPT_NODE_FROM, SCRIPT_STATE_FROM, script_options
from tests.conftest import REPO, fresh_node
from tests.integration.conftest import KERNELS
from tests.shared_code import load

health = load("expressware_health")

FRONTEND = "node3"
MEMBERS = ("node1", "node2")
TAG = "expressware/cluster/state"


@pytest.fixture
def frontend(nodes):
    return fresh_node(nodes[FRONTEND].root, FRONTEND, kernel=KERNELS[FRONTEND], role="frontend")


@pytest.fixture
def installed(salt_cli, minions, tmp_path):
    """``salt node3 state.apply expressware.notify`` with the paths of this test: returns them."""
    minion = next(m for m in minions if m.id == FRONTEND)
    salt_call = shutil.which("salt-call", path=os.path.dirname(sys.executable)) or shutil.which("salt-call")
    paths = {
        "script": str(tmp_path / "sbin" / "expressware-cluster-notify"),
        "config": str(tmp_path / "etc" / "cluster-notify.conf"),
        "state_from": SCRIPT_STATE_FROM,
        "node_from": SCRIPT_NODE_FROM,
        "salt_call": salt_call,
        "salt_config_dir": str(minion.config_dir),
        "state_dir": str(tmp_path / "state"),
    }
    nm_config = tmp_path / "networkmanager.conf"
    nm_config.write_text("# the Network Manager's own settings\nnotification_script = /old/script\n")
    register = {
        "file": str(nm_config),
        "pattern": r"^notification_script\s*=.*$",
        "line": "notification_script = {script}",
    }
    pillar = json.dumps({"expressware": {"notify": dict(paths, register=register)}})
    cmdline = salt_cli.cmdline("state.apply", "expressware.notify", f"pillar={pillar}", minion_tgt=FRONTEND)
    proc = subprocess.run(cmdline, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    results = json.loads(proc.stdout)[FRONTEND]
    assert all(r["result"] is True for r in results.values()), results
    return dict(paths, nm_config=str(nm_config))


def test_the_notify_state_installs_the_script_and_its_configuration(installed):
    with open(installed["script"], "rb") as fh:
        assert fh.read() == (REPO / "salt" / "expressware" / "files" / "cluster-notify.sh").read_bytes()
    assert os.access(installed["script"], os.X_OK)
    with open(installed["config"], encoding="utf-8") as fh:
        lines = [line.strip() for line in fh if line.strip() and not line.startswith("#")]
    assert "state_from = env:DIS_CLUSTER_STATE" in lines and "node_from = arg:1" in lines
    assert f"salt_config_dir = {installed['salt_config_dir']}" in lines
    # Registered with the Network Manager the way the pillar says (the vendor does not document it).
    with open(installed["nm_config"], encoding="utf-8") as fh:
        assert fh.read().splitlines() == [
            "# the Network Manager's own settings",
            f"notification_script = {installed['script']}",
        ]


def test_a_bad_notify_pillar_changes_nothing(salt_cli, tmp_path):
    pillar = json.dumps({"expressware": {"notify": {"script": str(tmp_path / "s"), "state_from": "arg:1\nx = y"}}})
    ret = salt_cli.run("state.apply", "expressware.notify", f"pillar={pillar}", minion_tgt=FRONTEND)
    assert ret.returncode != 0
    (result,) = ret.data.values()
    assert result["result"] is False and "state_from must be text on one line" in result["comment"]
    assert not (tmp_path / "s").exists()


def cluster_events(event_listener, master, after, count, timeout=60):
    """The first ``count`` cluster-state events fired after ``after``, in the order fired."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in event_listener.get_events([(master.id, TAG)], after_time=after)]
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found, key=lambda e: e.data["data"]["seq"])
        time.sleep(0.2)


def test_the_network_manager_reports_cluster_states_to_the_master(
    master, minions, nodes, frontend, installed, event_listener, tmp_path
):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    sim = [sys.executable, "-m", "expressware_sim", "netmgr"]
    members = [arg for m in MEMBERS for arg in ("--member", str(nodes[m].root))]
    subprocess.run(
        sim
        + [
            "configure",
            str(frontend.root),
            *members,
            *script_options(installed["script"], installed["config"]),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    manager = subprocess.Popen(
        sim + ["run", str(frontend.root), "--interval", "0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    start = time.time()
    try:
        node2 = nodes["node2"]
        subprocess.run([str(node2.dis_services), "stop"], check=True, capture_output=True, timeout=60)
        events = cluster_events(event_listener, master, start, 1)
        assert [e.data["data"]["state"] for e in events][:1] == ["REDUCED"], events
        subprocess.run([str(node2.dis_services), "start"], check=True, capture_output=True, timeout=60)
        # Back: links train (DEGRADED), then UP.
        events = cluster_events(event_listener, master, start, 3)
        degraded_at = time.time()
        subprocess.run(sim + ["degrade", str(frontend.root)], env=env, check=True, capture_output=True, timeout=60)
        events = cluster_events(event_listener, master, start, 4)
    finally:
        manager.terminate()
        _, stderr = manager.communicate(timeout=60)
    reports = [{k: v for k, v in e.data["data"].items() if not k.startswith("__pub_")} for e in events]
    assert [(r["state"], r["node"], r["seq"]) for r in reports] == [
        ("REDUCED", "node2", 1),
        ("DEGRADED", "node2", 2),
        ("UP", "node2", 3),
        ("DEGRADED", None, 4),
    ], (reports, stderr)
    assert {e.data["id"] for e in events} == {FRONTEND}  # sent by the frontend's minion, as the master verified
    assert all(abs(r["time"] - degraded_at) < 120 for r in reports)
    # The Network Manager ran the installed script for each change, and it succeeded.
    runs = [e for e in read_journal(frontend.root) if e.get("command", "").startswith("notify")]
    assert [(e["command"], e["outcome"], e["argv"]) for e in runs] == [
        ("notify REDUCED", "ok", ["node2"]),
        ("notify DEGRADED", "ok", ["node2"]),
        ("notify UP", "ok", ["node2"]),
        ("notify DEGRADED", "ok", [""]),
    ], runs  # links disabled by the operator: no node to name
    # The last report is kept on the frontend for a direct read.
    with open(os.path.join(installed["state_dir"], "state.json"), encoding="utf-8") as fh:
        assert json.load(fh) == reports[-1]

    # The health gate takes exactly these events: DEGRADED holds, UP lets the next node go once the frontend's state
    # file, read then, says the same (nothing on the bus proves who sent it).
    view = health.ClusterView(MEMBERS, frontend=FRONTEND, health_wait=60)
    for member in MEMBERS:
        view.answer(member, {"active": True, "reasons": []}, start)
    seen = []
    for event, report in zip(events, reports):
        taken, note = view.event(event.tag, event.data, health.stamp_time(event.data, event.stamp.timestamp()))
        assert taken, note
        verdict = view.verdict(time.time())
        if report["state"] == "UP":
            assert verdict["verdict"] == "hold" and "by an event on the bus only" in verdict["why"], verdict
            assert view.cluster_answer(report, time.time()) == (True, None)  # the state file held this report then
            verdict = view.verdict(time.time())
        seen.append(verdict["verdict"])
    assert seen == ["hold", "hold", "go", "hold"]
    assert "the cluster is DEGRADED" in view.verdict(time.time())["why"]
