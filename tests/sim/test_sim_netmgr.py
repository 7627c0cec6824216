"""The frontend's Network Manager (``expressware_sim.netmgr``): cluster state, notification script, journal."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from expressware_sim import SimError, read_journal
from expressware_sim.netmgr import NetworkManager, external_state, internal_state, member_state, notify_command

REPO = Path(__file__).resolve().parents[2]
SHIPPED_SCRIPT = REPO / "salt" / "expressware" / "files" / "cluster-notify.sh"

RECORDER = """#!/bin/sh
# Records how it was called: a line per run, tab-separated: state env, node env, arguments.
{ printf '%s\\t%s' "${NM_STATE-}" "${NM_NODE-}"; for a in "$@"; do printf '\\t%s' "$a"; done; echo; } >> "$RECORD"
"""


def up(name="n"):
    return {"name": name, "rebooting": False, "active": True, "services": {"dis_nodemgr": {"running": True}}}


def test_member_and_cluster_states():
    stopped = dict(up(), active=False, services={"dis_nodemgr": {"running": False}})
    training = dict(up(), active=False)
    assert [member_state(s) for s in (up(), training, stopped, dict(up(), rebooting=True), None)] == [
        "UP",
        "DEGRADED",
        "REDUCED",
        "FAILED",
        "FAILED",
    ]
    assert internal_state({"a": up(), "b": up()}) == ("UP", None)
    assert internal_state({"a": up(), "b": up()}, degraded=True) == ("DEGRADED", None)
    assert internal_state({"a": training, "b": stopped, "c": None}) == ("FAILED", "c")
    assert internal_state({"b": stopped, "a": stopped}) == ("REDUCED", "a")


def test_unstable_only_when_configured_and_after_the_grace():
    config = {"unstable_changes": 3, "unstable_window": 10.0, "unstable_grace": 60.0}
    changes = [100.0, 101.0, 102.0]
    assert external_state("UP", changes, 103.0, started=0.0, config=config) == "UNSTABLE"
    assert external_state("UP", changes, 103.0, started=50.0, config=config) == "UP"  # first 60 s
    assert external_state("UP", changes, 115.0, started=0.0, config=config) == "UP"  # calmed down
    assert external_state("UP", changes, 103.0, started=0.0, config=dict(config, unstable_changes=0)) == "UP"


def test_notify_command_passes_state_and_node_as_configured():
    base = {"script": "/s", "state_arg": 1, "state_env": None, "node_arg": 2, "node_env": None, "env": {"A": "b"}}
    argv, env = notify_command(base, "REDUCED", "node2")
    assert argv == ["/s", "REDUCED", "node2"] and env["A"] == "b"
    argv, env = notify_command(dict(base, state_arg=3, node_arg=None, node_env="NM_NODE"), "UP", None)
    assert argv == ["/s", "", "", "UP"] and env["NM_NODE"] == ""
    argv, env = notify_command(dict(base, state_arg=None, state_env="NM_STATE", node_arg=None), "FAILED", "n1")
    assert argv == ["/s"] and env["NM_STATE"] == "FAILED"


@pytest.fixture
def cluster(sim_node):
    members = [sim_node(f"node{i}") for i in (1, 2, 3)]
    frontend = sim_node("fe1", role="frontend")
    return frontend, members


def recorder(tmp_path):
    script = tmp_path / "recorder.sh"
    script.write_text(RECORDER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, tmp_path / "record.jsonl"


def recorded(path):
    runs = []
    for line in path.read_text().splitlines() if path.exists() else []:
        state, node, *argv = line.split("\t")
        runs.append({"argv": argv, "state": state, "node": node})
    return runs


def test_the_cluster_state_follows_the_nodes_and_each_change_runs_the_script(cluster, tmp_path, sim_run, sim_wait):
    frontend, (node1, node2, node3) = cluster
    script, record = recorder(tmp_path)
    manager = NetworkManager(frontend.root)
    manager.configure(members=[n.root for n in (node1, node2, node3)], script=str(script), env={"RECORD": str(record)})
    assert manager.status()["state"] == "UP"
    assert manager.step() == []  # nothing changed: nothing notified

    sim_run([node2.dis_services, "stop"])
    assert [(n["state"], n["node"]) for n in manager.step()] == [("REDUCED", "node2")]
    sim_run([node2.dis_services, "start"])
    assert [(n["state"], n["node"]) for n in manager.step()] == [("DEGRADED", "node2")]  # links train
    assert sim_wait(node2.is_active)
    assert [(n["state"], n["node"]) for n in manager.step()] == [("UP", "node2")]
    node3.reboot()
    assert [(n["state"], n["node"]) for n in manager.step()] == [("FAILED", "node3")]

    assert [r["argv"] for r in recorded(record)] == [
        ["REDUCED", "node2"],
        ["DEGRADED", "node2"],
        ["UP", "node2"],
        ["FAILED", "node3"],
    ]
    journal = read_journal(frontend.root)
    states = [(e["state"], e.get("cause")) for e in journal if e.get("event") == "cluster-state"]
    assert states == [("UP", None), ("REDUCED", "node2"), ("DEGRADED", "node2"), ("UP", "node2"), ("FAILED", "node3")]
    runs = [e for e in journal if e.get("command", "").startswith("notify")]
    assert [(e["command"], e["outcome"], e["seq"]) for e in runs] == [
        ("notify REDUCED", "ok", 1),
        ("notify DEGRADED", "ok", 2),
        ("notify UP", "ok", 3),
        ("notify FAILED", "ok", 4),
    ]


def test_degrade_on_demand(cluster, tmp_path):
    frontend, members = cluster
    script, record = recorder(tmp_path)
    manager = NetworkManager(frontend.root)
    manager.configure(
        members=[n.root for n in members],
        script=str(script),
        env={"RECORD": str(record)},
        state_arg=None,
        state_env="NM_STATE",
        node_arg=None,
        node_env="NM_NODE",
    )
    manager.degrade()
    assert [n["state"] for n in manager.step()] == ["DEGRADED"]
    manager.degrade(False)
    assert [n["state"] for n in manager.step()] == ["UP"]
    assert [(r["argv"], r["state"], r["node"]) for r in recorded(record)] == [([], "DEGRADED", ""), ([], "UP", "")]


def test_unstable_when_nodes_restart_one_after_the_other(cluster, sim_run):
    frontend, (node1, node2, _) = cluster
    manager = NetworkManager(frontend.root)
    manager.configure(members=[n.root for n in cluster[1]], unstable_changes=3, unstable_window=30, unstable_grace=0)
    shown = []
    for node in (node1, node2):
        sim_run([node.dis_services, "stop"])
        shown += [n["state"] for n in manager.step()]
        sim_run([node.dis_services, "start"])
        shown += [n["state"] for n in manager.step()]
    assert shown == ["REDUCED", "DEGRADED", "UNSTABLE"]
    assert manager.status()["internal"] == "DEGRADED"


def test_run_notifies_in_order_while_it_keeps_looking(cluster, tmp_path, sim_run, sim_wait):
    frontend, (node1, _, _) = cluster
    script, record = recorder(tmp_path)
    manager = NetworkManager(frontend.root)
    manager.configure(members=[n.root for n in cluster[1]], script=str(script), env={"RECORD": str(record)})
    stop = threading.Event()
    thread = threading.Thread(target=manager.run, kwargs={"interval": 0.02, "stop": stop})
    thread.start()
    try:
        sim_run([node1.dis_services, "stop"])
        assert sim_wait(lambda: manager.status()["state"] == "REDUCED")
        sim_run([node1.dis_services, "start"])
        assert sim_wait(lambda: len(recorded(record)) >= 3 and recorded(record)[-1]["argv"][0] == "UP")
    finally:
        stop.set()
        thread.join(10)
    assert [r["argv"] for r in recorded(record)] == [["REDUCED", "node1"], ["DEGRADED", "node1"], ["UP", "node1"]]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"state_arg": 2, "node_arg": 2}, "same position"),
        ({"state_arg": None}, "state_arg or state_env"),
        ({"state_env": "1BAD"}, "environment variable name"),
        ({"state_arg": 0}, "argument position"),
        ({"colour": "red"}, "unknown Network Manager settings"),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_written(cluster, settings, message):
    frontend, _ = cluster
    manager = NetworkManager(frontend.root)
    with pytest.raises(SimError, match=message):
        manager.configure(**settings)
    assert not manager.file.exists()


def test_a_member_must_be_a_simulated_node(cluster, tmp_path):
    frontend, _ = cluster
    with pytest.raises(SimError, match="not a simulated eXpressWare node"):
        NetworkManager(frontend.root).configure(members=[tmp_path / "nothing"])


def test_the_command_line(cluster, tmp_path, sim_cli, sim_run):
    frontend, (node1, node2, _) = cluster
    script, record = recorder(tmp_path)
    ret = sim_cli(
        "netmgr",
        "configure",
        frontend.root,
        "--member",
        node1.root,
        "--member",
        node2.root,
        "--script",
        script,
        "--env",
        f"RECORD={record}",
        "--state-arg",
        "2",
        "--node-arg",
        "1",
    )
    assert ret.returncode == 0, ret.stderr
    assert json.loads(ret.stdout)["state"] == "UP"
    ret = sim_cli("netmgr", "degrade", frontend.root)
    assert ret.returncode == 0 and json.loads(ret.stdout)["degraded"] is True
    ret = sim_cli("netmgr", "step", frontend.root)
    assert json.loads(ret.stdout)["state"] == "DEGRADED"
    assert recorded(record)[-1]["argv"] == ["", "DEGRADED"]
    sim_run([node2.dis_services, "stop"])
    ret = sim_cli("netmgr", "step", frontend.root)
    assert (json.loads(ret.stdout)["state"], json.loads(ret.stdout)["node"]) == ("REDUCED", "node2")
    assert recorded(record)[-1]["argv"] == ["node2", "REDUCED"]
    ret = sim_cli("netmgr", "show", tmp_path / "nowhere")
    assert ret.returncode == 1 and "not a simulated eXpressWare node" in ret.stderr


FAKE_SALT_CALL = """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/salt-call.args"
echo '{"local": true}'
"""


@pytest.mark.parametrize(
    "passing, conf",
    [
        ({}, "state_from = arg:1\nnode_from = arg:2\n"),
        (
            {"state_arg": None, "state_env": "DIS_STATE", "node_arg": None, "node_env": "DIS_NODE"},
            "state_from = env:DIS_STATE\nnode_from = env:DIS_NODE\n",
        ),
    ],
)
def test_the_shipped_script_as_the_network_manager_runs_it(cluster, tmp_path, sim_run, passing, conf):
    """The formula's cluster-notify.sh, run by the simulated Network Manager (salt-call replaced by a stand-in)."""
    frontend, (node1, _, _) = cluster
    salt_call = tmp_path / "salt-call"
    salt_call.write_text(FAKE_SALT_CALL)
    salt_call.chmod(0o755)
    config = tmp_path / "notify.conf"
    config.write_text(
        conf + f"salt_call = {salt_call}\nsalt_config_dir = /etc/salt-test\nstate_dir = {tmp_path / 'state'}\n"
    )
    manager = NetworkManager(frontend.root)
    manager.configure(
        members=[n.root for n in cluster[1]],
        script=str(SHIPPED_SCRIPT),
        env={"EXPRESSWARE_NOTIFY_CONF": str(config)},
        **passing,
    )
    sim_run([node1.dis_services, "stop"])
    manager.step()
    run = [e for e in read_journal(frontend.root) if e.get("command") == "notify REDUCED"]
    assert run and run[0]["outcome"] == "ok", run
    args = (tmp_path / "salt-call.args").read_text().splitlines()
    assert args[:2] == ["--config-dir", "/etc/salt-test"]
    assert args[-3:-1] == ["event.send", "expressware/cluster/state"]
    payload = json.loads(args[-1])
    assert (payload["state"], payload["node"], payload["seq"]) == ("REDUCED", "node1", 1)
    assert abs(payload["time"] - time.time()) < 5
    assert json.loads((tmp_path / "state" / "state.json").read_text()) == payload


@pytest.mark.parametrize(
    "argv, env, conf, message",
    [
        (["SIDEWAYS", "node1"], {}, "", "not a cluster state"),
        (["UP", "node1; reboot"], {}, "", "not a node name"),
        (["UP"], {}, "state_from = env:\n", "not env:NAME"),
        (["UP"], {}, "state_from = arg:x\n", "not arg:N"),
        (["UP"], {}, "colour = red\n", "unknown key 'colour'"),
        (["UP"], {}, "just words\n", "not a 'key = value' line"),
    ],
)
def test_the_shipped_script_refuses_bad_input_and_sends_nothing(tmp_path, sim_run, argv, env, conf, message):
    salt_call = tmp_path / "salt-call"
    salt_call.write_text(FAKE_SALT_CALL)
    salt_call.chmod(0o755)
    config = tmp_path / "notify.conf"
    config.write_text(conf + f"salt_call = {salt_call}\nstate_dir = {tmp_path / 'state'}\n")
    import subprocess  # pylint: disable=import-outside-toplevel

    ret = subprocess.run(
        ["sh", str(SHIPPED_SCRIPT), *argv],
        env=dict(os.environ, EXPRESSWARE_NOTIFY_CONF=str(config), **env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ret.returncode == 2 and message in ret.stderr, ret.stderr
    assert not (tmp_path / "salt-call.args").exists()
    assert not (tmp_path / "state" / "state.json").exists()
