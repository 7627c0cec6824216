"""Simulated node tools run as real subprocesses: dis_services, dis_diag, rpm."""

from __future__ import annotations

import os
import shutil
import sys
import time

import pytest

import expressware_sim
from expressware_sim import SimError, compare_versions, create_node, parse_version, rpm_fields, version_key

REFERENCE_STOP = """\
Stopping Dolphin SuperSockets drivers                      [  OK  ]
Stopping Dolphin SISCI driver                              [  OK  ]
Stopping Dolphin Node Manager                              [  OK  ]
Stopping Dolphin IRM driver                                [  OK  ]
Stopping Dolphin PX driver                                 [  OK  ]
Stopping Dolphin KOSIF driver                              [  OK  ]
"""

START_OK = """\
Starting Dolphin KOSIF driver                              [  OK  ]
Starting Dolphin PX driver                                 [  OK  ]
Starting Dolphin IRM driver                                [  OK  ]
Starting Dolphin Node Manager                              [  OK  ]
Starting Dolphin SISCI driver                              [  OK  ]
Starting Dolphin SuperSockets drivers                      [  OK  ]
"""

STATUS_STOPPED = """\
Dolphin KOSIF is stopped.
Dolphin PX is stopped.
Dolphin IRM is stopped.
Dolphin Node Manager is stopped.
Dolphin SISCI is stopped.
Dolphin SuperSockets is stopped.
"""


def status_running(version, pid, product="PX"):
    return (
        f"Dolphin KOSIF {version} is running.\n"
        f"Dolphin {product} {version} is running.\n"
        f"Dolphin IRM {version} is running.\n"
        f"Dolphin Node Manager is running (pid {pid}).\n"
        f"Dolphin SISCI {version} is running.\n"
        f"Dolphin SuperSockets {version} is running.\n"
    )


def nodemgr_pid(node):
    return node.state()["services"]["dis_nodemgr"]["pid"]


# --------------------------------------------------------------------------- versions


def test_version_syntax_and_order():
    assert parse_version("5.25.2") == (5, 25, 2, None)
    assert parse_version("5.26.0-d") == (5, 26, 0, "d")
    for bad in ("5.25", "5.25.2.1", "v5.25.2", "5.25.2-", "5.25.2-1", "5.25.2 ", "", "5.25.x"):
        with pytest.raises(SimError):
            parse_version(bad)
    ordered = ["5.9.9", "5.25.2", "5.25.10", "5.26.0-d", "5.26.0", "5.26.1-beta1", "5.26.1", "6.0.0"]
    assert sorted(reversed(ordered), key=version_key) == ordered
    assert compare_versions("5.26.0-d", "5.26.0") == -1
    assert compare_versions("5.26.0", "5.26.0") == 0
    assert rpm_fields("5.25.2") == ("5.25.2", "1")
    assert rpm_fields("5.26.0-d") == ("5.26.0", "d")


def test_create_node_layout_and_validation(tmp_path):
    node = create_node(tmp_path / "n", name="alpha", link_training=0.1)
    root = tmp_path / "n"
    assert (root / "var/lib/expressware-sim/node.json").is_file()
    assert (root / "var/cache/expressware").is_dir() and not any((root / "var/cache/expressware").iterdir())
    assert (root / "var/log/expressware-sim/journal.jsonl").is_file()
    for tool in (node.dis_services, node.dis_diag, node.rpm):
        assert os.access(tool, os.X_OK)
        first = tool.read_text().splitlines()[0]
        assert first == f"#!{os.path.abspath(sys.executable)} -S"
    assert node.prefix == root / "opt/DIS"
    assert node.dis_services == root / "opt/DIS/sbin/dis_services"
    assert node.rpm == root / "usr/bin/rpm"
    assert node.workdir == root / "var/cache/expressware"
    assert node.minion_config() == {
        "expressware": {
            "prefix": str(root / "opt/DIS"),
            "rpm": str(root / "usr/bin/rpm"),
            "workdir": str(root / "var/cache/expressware"),
        }
    }
    st = node.state()
    assert st["name"] == "alpha" and st["active"] and st["installed_version"] == "5.25.2"
    assert st["running_version"] == "5.25.2" and not st["rebooting"]
    assert set(st["faults"]) == set(expressware_sim.FAULTS) and not any(st["faults"].values())
    assert st["delays"]["link_training"] == 0.1
    assert expressware_sim.Node(root).name == "alpha"
    with pytest.raises(SimError):
        create_node(root)  # already a node
    with pytest.raises(SimError):
        expressware_sim.Node(tmp_path)  # not a node
    for bad in ({"version": "5.2"}, {"product": "QX"}, {"role": "master"}, {"link_training": -1}):
        with pytest.raises(SimError):
            create_node(tmp_path / "bad", **bad)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(SimError):
        node.set_fault("no-such-fault")
    with pytest.raises(SimError):
        node.set_delays(warp=1)


# --------------------------------------------------------------------------- dis_services


def test_dis_services_stop_start_status_exact(sim_node, sim_run):
    node = sim_node()
    pid = nodemgr_pid(node)
    r = sim_run([node.dis_services, "status"])
    assert (r.returncode, r.stdout, r.stderr) == (0, status_running("5.25.2", pid), "")

    r = sim_run([node.dis_services, "stop"])
    assert (r.returncode, r.stdout) == (0, REFERENCE_STOP)
    for line in r.stdout.splitlines():
        assert line.index("[") == 59  # column 60
    r = sim_run([node.dis_services, "status"])
    assert (r.returncode, r.stdout) == (3, STATUS_STOPPED)
    r = sim_run([node.dis_services, "stop"])  # stopping stopped services is fine
    assert (r.returncode, r.stdout) == (0, REFERENCE_STOP)

    r = sim_run([node.dis_services, "start"])
    assert (r.returncode, r.stdout) == (0, START_OK)
    new_pid = nodemgr_pid(node)
    assert new_pid != pid
    r = sim_run([node.dis_services, "status"])
    assert (r.returncode, r.stdout) == (0, status_running("5.25.2", new_pid))
    assert sim_run([node.dis_services, "status"]).stdout == r.stdout  # pid stable per start
    r = sim_run([node.dis_services, "start"])  # already running: just OK
    assert (r.returncode, r.stdout) == (0, START_OK)
    assert nodemgr_pid(node) == new_pid

    r = sim_run([node.dis_services, "restart"])
    assert (r.returncode, r.stdout) == (0, REFERENCE_STOP + START_OK)


def test_dis_services_usage(sim_node, sim_run):
    node = sim_node()
    for args in ([], ["reload"], ["status", "extra"], ["--help"]):
        r = sim_run([node.dis_services, *args])
        assert r.returncode == 2
        assert r.stderr.strip() == "Usage: dis_services {start|stop|restart|status}"
        assert r.stdout == ""


def test_dis_services_ix_product_and_stopped_creation(sim_node, sim_run):
    node = sim_node("ixnode", product="IX", running=False)
    r = sim_run([node.dis_services, "status"])
    assert (r.returncode, r.stdout) == (3, STATUS_STOPPED.replace("PX", "IX"))
    r = sim_run([node.dis_services, "start"])
    assert r.returncode == 0
    assert r.stdout == START_OK.replace("PX driver", "IX driver")
    assert "Dolphin IX 5.25.2 is running." in sim_run([node.dis_services, "status"]).stdout
    r = sim_run([node.rpm, "-qa", "--qf", "%{NAME}\\n"])
    assert r.stdout.split() == ["Dolphin-IX", "Dolphin-SISCI", "Dolphin-SuperSockets"]


def test_tools_find_their_root_from_their_location(tmp_path, sim_run):
    # a root with a space in its path, tools invoked from an unrelated cwd by relative path
    node = create_node(tmp_path / "with space" / "n1", link_training=0.05)
    r = sim_run([os.path.relpath(node.dis_services, tmp_path), "status"], cwd=tmp_path)
    assert r.returncode == 0 and "Dolphin PX 5.25.2 is running." in r.stdout
    r = sim_run(["sh", "-c", 'cd / && "$0" -qa', node.rpm])
    assert r.returncode == 0 and "Dolphin-PX-5.25.2-1.x86_64" in r.stdout
    # a node whose state file vanished: clear error, non-zero
    (node.root / "var/lib/expressware-sim/node.json").unlink()
    r = sim_run([node.dis_services, "status"])
    assert r.returncode == 1 and "not a simulated eXpressWare node" in r.stderr


# --------------------------------------------------------------------------- dis_diag


def test_dis_diag_link_training(sim_node, sim_run, sim_wait):
    node = sim_node(link_training=1.0)
    r = sim_run([node.dis_diag, "-V", "0"])
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "dis_diag version: 5.25.2"
    assert "Number of configured local adapters found: 1" in lines
    assert "Link 0: State: ENABLED, Active: 1, Cable inserted: 1, x16 Gen4" in lines
    assert any(line.startswith("Adapter 0 > Type: PXH830") for line in lines)
    assert any("Session valid" in line for line in lines)
    assert lines[-2:] == ["0 warnings and 0 errors", "TEST RESULT: PASSED"]

    sim_run([node.dis_services, "stop"])
    r = sim_run([node.dis_diag])
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1] == "TEST RESULT: FAILED"
    assert "drivers are not loaded" in r.stdout
    assert "Active: 0" in r.stdout

    t0 = time.time()
    sim_run([node.dis_services, "start"])
    r = sim_run([node.dis_diag, "-V", "1"])
    assert time.time() - t0 < 1.0, "machine too slow for this timing test"
    assert r.returncode == 1 and "link training in progress" in r.stdout
    assert r.stdout.splitlines()[-1] == "TEST RESULT: FAILED"
    assert not node.is_active()
    assert sim_wait(lambda: sim_run([node.dis_diag]).returncode == 0, timeout=5)
    assert node.is_active()
    # verbosity variants accepted
    for args in (["-V", "9"], ["-V1"], ["-V", "0", "-V", "1"]):
        assert sim_run([node.dis_diag, *args]).returncode == 0


def test_dis_diag_usage(sim_node, sim_run):
    node = sim_node()
    for args in (["-x"], ["-V"], ["-V", "high"], ["--verbose"], ["0"]):
        r = sim_run([node.dis_diag, *args])
        assert r.returncode == 2 and "Usage: dis_diag" in r.stderr and r.stdout == ""


def test_dis_diag_partial_services(sim_node, sim_run):
    node = sim_node()
    node.set_fault("stop-blocked")
    sim_run([node.dis_services, "stop"])  # SISCI and Node Manager stop, the rest is held
    r = sim_run([node.dis_diag])
    assert r.returncode == 1
    assert "not running: Node Manager, SISCI" in r.stdout


# --------------------------------------------------------------------------- rpm


def test_rpm_queries_as_the_salt_module_runs_them(sim_node, sim_run):
    node = sim_node()
    r = sim_run([node.rpm, "-qa", "--queryformat", "%{NAME} %{VERSION}-%{RELEASE}\\n", "Dolphin-*"])
    assert (r.returncode, r.stdout) == (
        0,
        "Dolphin-PX 5.25.2-1\nDolphin-SISCI 5.25.2-1\nDolphin-SuperSockets 5.25.2-1\n",
    )
    r = sim_run([node.rpm, "-q", "--queryformat", "%{VERSION}\\n", "Dolphin-PX"])
    assert (r.returncode, r.stdout) == (0, "5.25.2\n")
    r = sim_run([node.rpm, "-q", "--queryformat", "%{VERSION}\\n", "Dolphin-MX"])
    assert (r.returncode, r.stdout) == (1, "package Dolphin-MX is not installed\n")


def test_rpm_formats_and_errors(sim_node, sim_run):
    node = sim_node(version="5.26.0-d", arch="aarch64", kernel="6.1.0-rpi")
    r = sim_run([node.rpm, "-qa"])
    assert r.stdout == (
        "Dolphin-PX-5.26.0-d.aarch64\nDolphin-SISCI-5.26.0-d.aarch64\nDolphin-SuperSockets-5.26.0-d.aarch64\n"
    )
    r = sim_run([node.rpm, "-qa", "--qf=%{NAME}\\t%{RELEASE}\\n", "*SISCI*", "Dolphin-PX"])
    assert r.stdout == "Dolphin-PX\td\nDolphin-SISCI\td\n"
    r = sim_run([node.rpm, "-qa", "--queryformat=[%{ARCH}]", "nothing*"])
    assert (r.returncode, r.stdout) == (0, "")
    r = sim_run([node.rpm, "-q", "Dolphin-PX", "Dolphin-SISCI-5.26.0-d"])
    assert (r.returncode, r.stdout) == (0, "Dolphin-PX-5.26.0-d.aarch64\nDolphin-SISCI-5.26.0-d.aarch64\n")
    r = sim_run([node.rpm, "-q", "--qf", "%{VERSION}\\n", "Dolphin-PX", "kernel"])
    assert (r.returncode, r.stdout) == (1, "5.26.0\npackage kernel is not installed\n")
    for args in (["-q"], ["-e", "Dolphin-PX"], [], ["-qa", "--qf"], ["-qa", "--qf", "%{BOGUS}"], ["-i", "x.rpm"]):
        r = sim_run([node.rpm, *args])
        assert r.returncode == 1 and r.stderr, args


def test_frontend_role_packages(sim_node, sim_run):
    node = sim_node("fe", role="frontend")
    r = sim_run([node.rpm, "-qa", "--qf", "%{NAME}\\n", "Dolphin-*"])
    assert r.stdout.split() == [
        "Dolphin-NetworkHosts",
        "Dolphin-NetworkManager",
        "Dolphin-PX",
        "Dolphin-SISCI",
        "Dolphin-SuperSockets",
    ]
    assert node.state()["frontend_version"] == "5.25.2"


# --------------------------------------------------------------------------- faults


def test_fault_stop_blocked(sim_node, sim_run):
    node = sim_node()
    node.set_fault("stop-blocked")
    r = sim_run([node.dis_services, "stop"])
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        "Stopping Dolphin SuperSockets drivers                      [FAILED]",
        "Stopping Dolphin SISCI driver                              [  OK  ]",
        "Stopping Dolphin Node Manager                              [  OK  ]",
        "Stopping Dolphin IRM driver                                [FAILED]",
        "Stopping Dolphin PX driver                                 [FAILED]",
        "Stopping Dolphin KOSIF driver                              [FAILED]",
    ]
    r = sim_run([node.dis_services, "status"])
    assert r.returncode == 3
    assert r.stdout.splitlines() == [
        "Dolphin KOSIF 5.25.2 is running.",
        "Dolphin PX 5.25.2 is running.",
        "Dolphin IRM 5.25.2 is running.",
        "Dolphin Node Manager is stopped.",
        "Dolphin SISCI is stopped.",
        "Dolphin SuperSockets 5.25.2 is running.",
    ]
    # persists: restart fails again, but brings the stopped services back
    r = sim_run([node.dis_services, "restart"])
    assert r.returncode == 1
    assert r.stdout.splitlines()[6:] == START_OK.splitlines()
    assert sim_run([node.dis_services, "status"]).returncode == 0
    node.set_fault("stop-blocked", False)
    assert sim_run([node.dis_services, "stop"]).returncode == 0


def test_fault_start_fails_until_reboot(sim_node, sim_run, sim_wait):
    # A reboot long enough for three commands to run inside it on a loaded machine (0.3 s was not, under load).
    node = sim_node(reboot=3, link_training=0.1)
    node.set_fault("start-fails-until-reboot")
    assert sim_run([node.dis_services, "stop"]).returncode == 0
    r = sim_run([node.dis_services, "start"])
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        "Starting Dolphin KOSIF driver                              [  OK  ]",
        "Starting Dolphin PX driver                                 [  OK  ]",
        "Starting Dolphin IRM driver                                [FAILED]",
        "Starting Dolphin Node Manager                              [FAILED]",
        "Starting Dolphin SISCI driver                              [FAILED]",
        "Starting Dolphin SuperSockets drivers                      [FAILED]",
    ]
    r = sim_run([node.dis_services, "status"])
    assert r.returncode == 3 and "Dolphin IRM is stopped." in r.stdout and "Dolphin PX 5.25.2 is running." in r.stdout
    assert sim_run([node.dis_services, "start"]).returncode == 1  # still fragmented
    node.reboot()
    st = node.state()
    assert st["rebooting"] and not st["active"]
    r = sim_run([node.dis_services, "status"])
    assert (r.returncode, r.stdout) == (3, STATUS_STOPPED)
    r = sim_run([node.dis_services, "start"])
    assert r.returncode == 1 and "rebooting" in r.stderr
    assert sim_run([node.dis_diag]).returncode == 1
    assert sim_wait(lambda: sim_run([node.dis_diag]).returncode == 0, timeout=10)
    st = node.state()
    assert not st["faults"]["start-fails-until-reboot"] and not st["rebooting"]
    assert sim_run([node.dis_services, "restart"]).returncode == 0


def test_fault_never_active(sim_node, sim_run):
    node = sim_node(link_training=0.05)
    node.set_fault("never-active")
    assert sim_run([node.dis_diag]).returncode == 0  # up until its next start
    sim_run([node.dis_services, "restart"])
    time.sleep(0.1)
    assert sim_run([node.dis_services, "status"]).returncode == 0  # services do run
    r = sim_run([node.dis_diag])
    assert r.returncode == 1 and "Links not active" in r.stdout
    assert not node.is_active()
    node.clear_faults()
    assert node.is_active()
    assert sim_run([node.dis_diag]).returncode == 0


def test_concurrent_tool_invocations_on_one_node(sim_node, sim_run):
    import concurrent.futures as cf

    node = sim_node(link_training=0.0)
    commands = [[node.dis_services, a] for a in ("stop", "start", "status", "restart")] * 4
    commands += [[node.rpm, "-qa"], [node.dis_diag]] * 4
    with cf.ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(sim_run, commands))
    for r in results:
        assert "Traceback" not in r.stderr, r.stderr
    sim_run([node.dis_services, "start"])
    assert node.state()["all_running"]
    text = node.journal_file.read_text()
    assert len(text.splitlines()) == len(node.journal()) >= len(commands) + 1
    assert shutil.which("sh")


def test_interpreter_path_with_space_uses_sh_polyglot(tmp_path, monkeypatch, sim_run):
    odd = tmp_path / "python dir" / "python"
    odd.parent.mkdir()
    odd.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(odd))
    node = create_node(tmp_path / "n", link_training=0.05)
    assert node.dis_services.read_text().startswith("#!/bin/sh\n")
    r = sim_run([node.dis_services, "status"])
    assert r.returncode == 0, r.stderr
    assert "Dolphin PX 5.25.2 is running." in r.stdout
