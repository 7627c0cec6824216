"""The simulated SIA (Dolphin_eXpressWare-<version>.sh) run as ``sh <sia> <options>``."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

NODE_RPMS = [
    "Dolphin-PX-5.26.0-1.x86_64.rpm",
    "Dolphin-SISCI-5.26.0-1.x86_64.rpm",
    "Dolphin-SuperSockets-5.26.0-1.x86_64.rpm",
]


def snapshot(node):
    """What an install must not change: packages, services, faults (time fields excluded)."""
    st = node.state()
    return {
        k: st[k]
        for k in (
            "installed_version",
            "running_version",
            "packages",
            "services",
            "faults",
            "active",
            "rebooting",
            "frontend_version",
        )
    }


def installed_events(node):
    return [e for e in node.journal() if e.get("event") == "installed"]


def test_sia_is_a_makeself_like_sh_script(sim_sia):
    sia = sim_sia("5.26.0")
    assert sia.name == "Dolphin_eXpressWare-5.26.0.sh"
    text = sia.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert 'SHA256="' in text and "filesizes=" in text and "\n__ARCHIVE_BELOW__\n" in text
    assert "exec " in text and '"$0" 5.26.0 "$@"' in text


def test_build_rpm(sim_node, sim_sia, sim_run):
    node = sim_node()
    before = snapshot(node)
    sia = sim_sia("5.26.0")
    r = sim_run(["sh", sia, "--build-rpm", "--batch"], cwd=node.workdir)
    assert r.returncode == 0, r.stderr
    assert "Verifying archive integrity... All good." in r.stdout
    assert sorted(p.name for p in (node.workdir / "node_RPMS").iterdir()) == NODE_RPMS
    assert sorted(p.name for p in (node.workdir / "frontend_RPMS").iterdir()) == [
        "Dolphin-NetworkHosts-5.26.0-1.x86_64.rpm",
        "Dolphin-NetworkManager-5.26.0-1.x86_64.rpm",
    ]
    meta = json.loads((node.workdir / "node_RPMS" / NODE_RPMS[0]).read_text())
    assert {k: meta[k] for k in ("name", "version", "arch", "kernel", "product", "role")} == {
        "name": "Dolphin-PX",
        "version": "5.26.0",
        "arch": "x86_64",
        "kernel": "5.14.0-362.el9.x86_64",
        "product": "PX",
        "role": "node",
    }
    assert snapshot(node) == before  # building installs nothing
    # a snapshot build: RELEASE carries the suffix; stale RPMs of the old build are replaced
    r = sim_run(["sh", sim_sia("5.27.0-d"), "--build-rpm"], cwd=node.workdir)
    assert r.returncode == 0
    assert sorted(p.name for p in (node.workdir / "node_RPMS").iterdir()) == [
        "Dolphin-PX-5.27.0-d.x86_64.rpm",
        "Dolphin-SISCI-5.27.0-d.x86_64.rpm",
        "Dolphin-SuperSockets-5.27.0-d.x86_64.rpm",
    ]


def test_build_fails_fault(sim_node, sim_sia, sim_run):
    node = sim_node()
    node.set_fault("build-fails")
    for args in (["--build-rpm"], ["--install-node", "--batch"]):
        r = sim_run(["sh", sim_sia("5.26.0"), *args], cwd=node.workdir)
        assert r.returncode == 1
        assert (
            "ERROR: kernel header files for 5.14.0-362.el9.x86_64 not found "
            "(kernel-devel-5.14.0-362.el9.x86_64)" in r.stderr
        )
    assert list(node.workdir.iterdir()) == []
    assert node.state()["installed_version"] == "5.25.2"


def test_rolling_install_with_prebuilt_rpms(sim_node, sim_sia, sim_run, sim_wait):
    node = sim_node(link_training=0.3)
    sia = sim_sia("5.26.0")
    assert sim_run(["sh", sia, "--build-rpm"], cwd=node.workdir).returncode == 0
    r = sim_run(["sh", sia, "--install-node", "--use-rpms", node.workdir, "--batch"], cwd=node.workdir)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "Stopping Dolphin SuperSockets drivers                      [  OK  ]" in out
    assert "Starting Dolphin SuperSockets drivers                      [  OK  ]" in out
    st = node.state()
    assert st["installed_version"] == st["running_version"] == "5.26.0"
    assert not st["active"]  # links are training
    r = sim_run([node.rpm, "-q", "--queryformat", "%{VERSION}\\n", "Dolphin-PX"])
    assert r.stdout == "5.26.0\n"
    assert "Dolphin IRM 5.26.0 is running." in sim_run([node.dis_services, "status"]).stdout
    assert sim_wait(lambda: sim_run([node.dis_diag]).returncode == 0)
    events = [e for e in node.journal() if "event" in e]
    assert [e["event"] for e in events][-4:] == ["down", "sia-stop", "installed", "active"]
    assert events[-3]["ok"] is True and events[-3]["failed"] == []
    cmd = [e for e in node.journal() if e.get("command", "").startswith("sia --install-node")][-1]
    assert cmd["exit"] == 0 and cmd["outcome"] == "ok" and cmd["sia_version"] == "5.26.0"
    down, inst, active = events[-4], events[-2], events[-1]
    assert cmd["time"] <= down["time"] <= inst["time"] <= cmd["end"]
    assert active["time"] == pytest.approx(node.state()["started_at"] + 0.3, abs=1e-6)


def test_install_relative_sia_and_use_rpms_equals(sim_node, sim_sia, sim_run):
    node = sim_node()
    sia = shutil.copy(sim_sia("5.26.0-d"), node.workdir)
    assert sim_run(["sh", "./Dolphin_eXpressWare-5.26.0-d.sh", "--build-rpm"], cwd=node.workdir).returncode == 0
    r = sim_run(["sh", "./Dolphin_eXpressWare-5.26.0-d.sh", "--install-node", "--use-rpms=."], cwd=node.workdir)
    assert r.returncode == 0, r.stderr
    assert node.state()["installed_version"] == "5.26.0-d"
    assert sia


def test_install_builds_when_no_rpms_given(sim_node, sim_sia, sim_run):
    node = sim_node()
    r = sim_run(["sh", sim_sia("5.25.3"), "--install-node", "--batch"], cwd=node.workdir)
    assert r.returncode == 0, r.stderr
    assert node.state()["running_version"] == "5.25.3"
    assert list(node.workdir.iterdir()) == []


def test_refuse_same_and_older_unless_enforced(sim_node, sim_sia, sim_run):
    node = sim_node(version="5.26.0")
    before = snapshot(node)
    for version in ("5.26.0", "5.25.2", "5.26.0-d"):
        r = sim_run(["sh", sim_sia(version), "--install-node", "--batch"], cwd=node.workdir)
        assert r.returncode == 3
        assert "5.26.0" in r.stderr and version in r.stderr and "--enforce" in r.stderr
    assert snapshot(node) == before
    assert installed_events(node) == []
    assert [e["outcome"] for e in node.journal() if "command" in e] == ["refused"] * 3
    r = sim_run(["sh", sim_sia("5.25.2"), "--install-node", "--enforce", "--batch"], cwd=node.workdir)
    assert r.returncode == 0, r.stderr
    assert node.state()["installed_version"] == "5.25.2"


@pytest.mark.parametrize(
    "field,value,create",
    [
        ("kernel", "5.14.0-400.el9.x86_64", {"kernel": "5.14.0-400.el9.x86_64"}),
        ("arch", "aarch64", {"arch": "aarch64"}),
    ],
)
def test_refuse_rpms_of_other_kernel_or_arch(sim_node, sim_sia, sim_run, field, value, create):
    builder = sim_node("builder")
    other = sim_node("other", **create)
    sia = sim_sia("5.26.0")
    assert sim_run(["sh", sia, "--build-rpm"], cwd=builder.workdir).returncode == 0
    before = snapshot(other)
    r = sim_run(["sh", sia, "--install-node", "--use-rpms", builder.workdir], cwd=other.workdir)
    assert r.returncode == 4
    assert "refusing RPM" in r.stderr and value in r.stderr
    assert snapshot(other) == before
    assert not [e for e in other.journal() if e.get("event") in ("down", "installed")]


def test_refuse_bad_rpm_dirs(sim_node, sim_sia, sim_run, tmp_path):
    node = sim_node()
    ixnode = sim_node("ix", product="IX")
    before = snapshot(node)
    sia = sim_sia("5.26.0")
    # missing directory, empty node_RPMS
    r = sim_run(["sh", sia, "--install-node", "--use-rpms", tmp_path / "nope"], cwd=node.workdir)
    assert r.returncode == 4 and "does not exist" in r.stderr
    (tmp_path / "empty" / "node_RPMS").mkdir(parents=True)
    r = sim_run(["sh", sia, "--install-node", "--use-rpms", tmp_path / "empty"], cwd=node.workdir)
    assert r.returncode == 4 and "no RPM packages" in r.stderr
    # RPMs of another product
    assert sim_run(["sh", sia, "--build-rpm"], cwd=ixnode.workdir).returncode == 0
    r = sim_run(["sh", sia, "--install-node", "--use-rpms", ixnode.workdir], cwd=node.workdir)
    assert r.returncode == 4 and "product" in r.stderr
    # RPMs of another version than the SIA's
    assert sim_run(["sh", sim_sia("5.26.1"), "--build-rpm"], cwd=node.workdir).returncode == 0
    r = sim_run(["sh", sia, "--install-node", "--use-rpms", "."], cwd=node.workdir)
    assert r.returncode == 4 and "5.26.1" in r.stderr
    assert snapshot(node) == before


def test_corrupt_archive(sim_node, sim_sia, sim_run):
    node = sim_node()
    before = snapshot(node)
    for args in (["--install-node", "--batch"], ["--build-rpm"]):
        r = sim_run(["sh", sim_sia("5.26.0", corrupt=True), *args], cwd=node.workdir)
        assert r.returncode == 1
        assert "Verifying archive integrity... Error in checksums" in r.stderr
    assert snapshot(node) == before
    assert list(node.workdir.iterdir()) == []


def test_no_node_above_cwd(sim_sia, sim_run, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = sim_run(["sh", sim_sia("5.26.0"), "--install-node", "--batch"], cwd=elsewhere)
    assert r.returncode == 5
    assert str(elsewhere) in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--install-node", "--bogus"],
        ["--install-node", "--use-rpms"],
        ["--install-node", "--use-rpms", "--reboot"],
        [],
        ["--batch"],
        ["--build-rpm", "--install-node"],
        ["--build-rpm", "--reboot"],
    ],
)
def test_usage_errors(sim_node, sim_sia, sim_run, args):
    node = sim_node()
    before = snapshot(node)
    r = sim_run(["sh", sim_sia("5.26.0"), *args], cwd=node.workdir)
    assert r.returncode == 2
    assert "Usage:" in r.stderr
    assert snapshot(node) == before


def test_stop_blocked_install(sim_node, sim_sia, sim_run, sim_wait):
    node = sim_node()
    node.set_fault("stop-blocked")
    r = sim_run(["sh", sim_sia("5.26.0"), "--install-node", "--batch"], cwd=node.workdir)
    assert r.returncode == 0, r.stderr
    assert "WARNING" in r.stderr and "after a reboot" in r.stderr
    assert "Stopping Dolphin SuperSockets drivers                      [FAILED]" in r.stdout
    (attempt,) = [e for e in node.journal() if e.get("event") == "sia-stop"]
    assert attempt["ok"] is False
    assert attempt["failed"] == ["SuperSockets drivers", "IRM driver", "PX driver", "KOSIF driver"]
    st = node.state()
    assert st["installed_version"] == "5.26.0"
    assert st["running_version"] == "5.25.2"
    assert all(s["running"] and s["version"] == "5.25.2" for s in st["services"].values())
    r = sim_run([node.rpm, "-q", "--queryformat", "%{VERSION}\\n", "Dolphin-PX"])
    assert r.stdout == "5.26.0\n"
    assert "Dolphin PX 5.25.2 is running." in sim_run([node.dis_services, "status"]).stdout
    assert sim_wait(node.is_active)
    # the reboot loads the new drivers
    node.reboot()
    assert sim_wait(lambda: sim_run([node.dis_diag]).returncode == 0)
    assert node.state()["running_version"] == "5.26.0"


def test_stop_blocked_install_with_reboot(sim_node, sim_sia, sim_run, sim_wait):
    node = sim_node(reboot=0.3)
    node.set_fault("stop-blocked")
    r = sim_run(["sh", sim_sia("5.26.0"), "--install-node", "--reboot", "--batch"], cwd=node.workdir)
    assert r.returncode == 0, r.stderr
    assert "rebooting" in r.stdout
    assert node.state()["rebooting"]
    assert sim_wait(lambda: sim_run([node.dis_diag]).returncode == 0)
    st = node.state()
    assert st["running_version"] == st["installed_version"] == "5.26.0"


def test_start_fails_until_reboot_install(sim_node, sim_sia, sim_run, sim_wait):
    node = sim_node()
    node.set_fault("start-fails-until-reboot")
    r = sim_run(["sh", sim_sia("5.26.0"), "--install-node", "--batch"], cwd=node.workdir)
    assert r.returncode == 1
    assert "Starting Dolphin IRM driver                                [FAILED]" in r.stdout
    assert "Starting Dolphin PX driver                                 [  OK  ]" in r.stdout
    assert "failed to start" in r.stderr and "a reboot of the Cluster Node will fix the problem" in r.stderr
    assert node.state()["installed_version"] == "5.26.0"  # files are installed
    assert sim_run([node.dis_services, "status"]).returncode == 3
    assert sim_run([node.dis_diag]).returncode == 1
    node.reboot()
    assert sim_wait(lambda: sim_run([node.dis_diag]).returncode == 0)
    st = node.state()
    assert st["running_version"] == "5.26.0" and not st["faults"]["start-fails-until-reboot"]


def test_start_fails_install_with_reboot(sim_node, sim_sia, sim_run, sim_wait):
    node = sim_node()
    node.set_fault("start-fails-until-reboot")
    r = sim_run(["sh", sim_sia("5.26.0"), "--install-node", "--reboot", "--batch"], cwd=node.workdir)
    assert r.returncode == 0, r.stderr
    assert sim_wait(lambda: sim_run([node.dis_diag]).returncode == 0)
    assert node.state()["running_version"] == "5.26.0"


def test_reboot_returns_at_once_and_node_comes_back(sim_node, sim_sia, sim_run, sim_wait):
    node = sim_node(reboot=1.5, link_training=0.2)
    t0 = time.time()
    r = sim_run(["sh", sim_sia("5.26.0"), "--install-node", "--reboot", "--batch"], cwd=node.workdir)
    elapsed = time.time() - t0
    assert r.returncode == 0, r.stderr
    assert elapsed < 1.4, "the SIA must not wait for the reboot"
    st = node.state()
    assert st["rebooting"] and not st["active"] and st["running_version"] is None
    assert sim_run([node.dis_services, "status"]).returncode == 3
    assert sim_wait(lambda: sim_run([node.dis_diag]).returncode == 0, timeout=5)
    events = [e for e in node.journal() if "event" in e]
    names = [e["event"] for e in events]
    assert names[-6:] == ["down", "sia-stop", "installed", "reboot", "booted", "active"]
    reboot, booted, active = events[-3:]
    assert booted["time"] == pytest.approx(reboot["until"], abs=1e-6)
    assert booted["time"] == pytest.approx(reboot["time"] + 1.5, abs=1e-6)
    assert active["time"] == pytest.approx(booted["time"] + 0.2, abs=1e-6)


def test_install_frontend(sim_node, sim_sia, sim_run):
    fe = sim_node("fe", role="frontend")
    sia = sim_sia("5.26.0")
    assert sim_run(["sh", sia, "--build-rpm"], cwd=fe.workdir).returncode == 0
    r = sim_run(["sh", sia, "--install-frontend", "--use-rpms", ".", "--batch"], cwd=fe.workdir)
    assert r.returncode == 0, r.stderr
    st = fe.state()
    assert st["frontend_version"] == "5.26.0"
    assert st["installed_version"] == "5.25.2" and st["active"]  # node stack untouched
    assert not [e for e in fe.journal() if e.get("event") == "down"]
    r = sim_run([fe.rpm, "-q", "--qf", "%{VERSION}\\n", "Dolphin-NetworkManager", "Dolphin-PX"])
    assert r.stdout == "5.26.0\n5.25.2\n"
    r = sim_run(["sh", sia, "--install-frontend", "--batch"], cwd=fe.workdir)
    assert r.returncode == 3
    node = sim_node("plain")
    r = sim_run(["sh", sia, "--install-frontend", "--batch"], cwd=node.workdir)
    assert r.returncode == 4 and "not the Cluster Management Node" in r.stderr


def test_second_sia_on_same_node_is_refused(sim_node, sim_sia, sim_run, sim_wait):
    node = sim_node(install=1.0)
    sia = sim_sia("5.26.0")
    results = {}

    def first():
        results["first"] = sim_run(["sh", sia, "--install-node", "--batch"], cwd=node.workdir)

    t = threading.Thread(target=first)
    t.start()
    # the first SIA holds the installation lock once it has stopped the services
    assert sim_wait(lambda: not node.state()["all_running"], interval=0.02)
    second = sim_run(["sh", sia, "--install-node", "--enforce", "--batch"], cwd=node.workdir)
    t.join()
    assert results["first"].returncode == 0
    assert second.returncode == 1 and "already running" in second.stderr


def test_an_install_held_by_its_delay_ends_when_the_delay_is_lowered(sim_node, sim_sia, sim_run, sim_wait):
    """A running install looks at its delay again: held by an hour's delay, it ends once the delay is 0."""
    node = sim_node(install=3600)
    sia = sim_sia("5.26.0")
    results = {}
    t = threading.Thread(
        target=lambda: results.update(done=sim_run(["sh", sia, "--install-node", "--batch"], cwd=node.workdir))
    )
    t.start()
    assert sim_wait(lambda: not node.state()["all_running"], interval=0.02)  # installing
    time.sleep(0.5)
    assert "done" not in results and node.state()["installed_version"] != "5.26.0"  # held
    released = time.monotonic()
    node.set_delays(install=0)
    t.join(timeout=10)
    assert time.monotonic() - released < 5
    assert results["done"].returncode == 0, results["done"].stderr
    assert node.state()["installed_version"] == "5.26.0"
