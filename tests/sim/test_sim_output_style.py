"""The simulator's output styles: ``simple`` (facts §10, the default) and ``dated`` (the vendor's own forms, §3.3)."""

from __future__ import annotations

import json

import pytest

import expressware_sim
from expressware_sim import SimError, create_node
from expressware_sim.output import long_date, release_tag, short_date
from tests.shared_code import load

vendor = load("expressware_vendor")


def dated_status_running(version, pid, date, short, built, product="PX"):
    return (
        f"Dolphin KOSIF {version} ( {date} ) is running.\n"
        f"Dolphin {product} {version} ( {date} ) is running.\n"
        f"Dolphin IRM (GX) {version} ( {date} ) is running.\n"
        f"Dolphin Node Manager is running (pid {pid}).\n"
        f"Dolphin SISCI {version} ( {date} ) is running.\n"
        f'Dolphin SuperSockets {version} "St.Martin", {short} (built {built} 12:00:00) is running.\n'
    )


STATUS_NOT_RUNNING = "".join(
    f"Dolphin {name} is not running.\n" for name in ("KOSIF", "PX", "IRM", "Node Manager", "SISCI", "SuperSockets")
)


def test_dates_of_a_version():
    # §5.2: 5.25.2 is DIS_RELEASE_5_25_2_APR_24_2026.
    assert long_date("5.25.2") == "April 24th 2026" and short_date("5.25.2") == "Apr 24th 2026"
    assert release_tag("5.25.2") == "DIS_RELEASE_5_25_2_APR_24_2026"
    assert release_tag("5.26.0-d").startswith("DIS_RELEASE_5_26_0_D_")
    assert long_date("5.26.0") == long_date("5.26.0") != long_date("5.25.2")  # fixed per version


def test_dated_status_is_the_vendor_form_and_reads_as_the_simple_one(sim_node, sim_run):
    node = sim_node("n1", version="5.25.2", output_style="dated")
    pid = node.state()["services"]["dis_nodemgr"]["pid"]
    proc = sim_run([node.dis_services, "status"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == dated_status_running("5.25.2", pid, "April 24th 2026", "Apr 24th 2026", "Apr 24 2026")
    services = vendor.parse_status(proc.stdout)
    assert vendor.running_version(services) == "5.25.2"
    assert all(entry["running"] for entry in services.values())
    assert services["nodemgr"]["pid"] == pid

    stop = sim_run([node.dis_services, "stop"])
    assert stop.returncode == 0 and all(line["ok"] for line in vendor.parse_action_output(stop.stdout))
    proc = sim_run([node.dis_services, "status"])
    assert proc.returncode == 3 and proc.stdout == STATUS_NOT_RUNNING
    assert not any(entry["running"] for entry in vendor.parse_status(proc.stdout).values())


def test_dated_snapshot_version(sim_node, sim_run):
    node = sim_node("n1", version="5.26.0-d", output_style="dated")
    proc = sim_run([node.dis_services, "status"])
    assert "Dolphin IRM (GX) 5.26.0-d ( " in proc.stdout
    assert vendor.running_version(vendor.parse_status(proc.stdout)) == "5.26.0-d"


def test_dated_diag(sim_node, sim_run, sim_wait):
    node = sim_node("n1", version="5.25.2", output_style="dated")
    proc = sim_run([node.dis_diag, "-V", "0"])
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[:3] == [
        "dis_diag version: 5.25.2",
        "Driver version: Dolphin IRM (GX) 5.25.2",
        "ExpressWare release line shown by driver: DIS_RELEASE_5_25_2_APR_24_2026",
    ]
    assert lines[-2:] == ["TEST RESULT: PASSED", "0 warnings and 0 errors"]  # the summary after the verdict
    parsed = vendor.parse_diag(proc.stdout)
    assert parsed["passed"] is True
    assert (parsed["tool_version"], parsed["driver_version"], parsed["release_version"]) == ("5.25.2",) * 3

    sim_run([node.dis_services, "stop"])
    proc = sim_run([node.dis_diag, "-V", "0"])
    assert proc.returncode == 1 and vendor.parse_diag(proc.stdout)["passed"] is False


def test_simple_is_the_default_and_unchanged(sim_node, sim_run):
    node = sim_node("n1", version="5.25.2")
    assert node.state()["output_style"] == "simple"
    proc = sim_run([node.dis_services, "status"])
    assert proc.stdout.splitlines()[2] == "Dolphin IRM 5.25.2 is running."
    assert sim_run([node.dis_diag]).stdout.splitlines()[-1] == "TEST RESULT: PASSED"


def test_switch_on_an_existing_node_and_back(sim_node, sim_run):
    node = sim_node("n1", version="5.25.2")
    node.set_output_style("dated")
    assert "( April 24th 2026 )" in sim_run([node.dis_services, "status"]).stdout
    assert any(e.get("event") == "output-style" and e["style"] == "dated" for e in node.journal())
    node.set_output_style("simple")
    assert "(" not in sim_run([node.dis_services, "status"]).stdout.replace("(pid", "")


def test_a_node_file_from_before_the_option_is_simple(sim_node, sim_run):
    node = sim_node("n1", version="5.25.2")
    raw = json.loads(node.state_file.read_text())
    del raw["output_style"]
    node.state_file.write_text(json.dumps(raw))
    assert node.state()["output_style"] == "simple"
    assert sim_run([node.dis_services, "status"]).stdout.splitlines()[0] == "Dolphin KOSIF 5.25.2 is running."


def test_bad_style_is_refused_and_changes_nothing(sim_node, tmp_path):
    with pytest.raises(SimError, match="unknown output style 'fancy'"):
        create_node(tmp_path / "bad", output_style="fancy")
    assert not (tmp_path / "bad").exists()
    node = sim_node("n1")
    with pytest.raises(SimError, match="unknown output style"):
        node.set_output_style("fancy")
    assert node.state()["output_style"] == "simple"


def test_cli(sim_cli, sim_run, tmp_path):
    created = sim_cli("node", "create", tmp_path / "n1", "--output-style", "dated")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["output_style"] == "dated"
    node = expressware_sim.Node(tmp_path / "n1")
    assert "(GX)" in sim_run([node.dis_services, "status"]).stdout
    shown = sim_cli("style", tmp_path / "n1")
    assert shown.returncode == 0 and shown.stdout.strip() == "dated"
    switched = sim_cli("style", tmp_path / "n1", "simple")
    assert switched.stdout.strip() == "simple" and node.state()["output_style"] == "simple"
    bad = sim_cli("style", tmp_path / "n1", "fancy")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    cluster = sim_cli("cluster", tmp_path / "c", "--nodes", "2", "--output-style", "dated")
    assert cluster.returncode == 0, cluster.stderr
    assert expressware_sim.Node(tmp_path / "c" / "node2").state()["output_style"] == "dated"
