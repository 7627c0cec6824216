"""The demo's generated Salt configuration and its command line (no daemons are started)."""

import getpass
import math
import subprocess
from pathlib import Path

import pytest
import yaml

from expressware_sim import create_node
from saltext.expressware import demo
from saltext.expressware.utils import expressware_rollout as rollout
from saltext.expressware.utils import expressware_store


def test_master_config_stays_in_the_work_directory(tmp_path):
    conf = demo.master_config(tmp_path, 40001, 40002)
    for key in ("root_dir", "pki_dir", "cachedir", "sock_dir", "pidfile", "log_file", "key_logfile"):
        assert conf[key].startswith(str(tmp_path)), key
    assert conf["interface"] == "127.0.0.1"
    assert (conf["publish_port"], conf["ret_port"]) == (40001, 40002)
    assert conf["user"] == getpass.getuser()
    assert conf["auto_accept"] is True and conf["file_recv"] is True
    assert conf["file_roots"] == {"base": [str(tmp_path / "srv" / "salt")]}
    assert conf["pillar_roots"] == {"base": [str(tmp_path / "srv" / "pillar")]}
    assert conf["peer_run"] == {".*": ["expressware_lease.*"]}
    assert conf["timeout"] == 30


def test_minion_config_points_at_its_node(tmp_path):
    node = create_node(tmp_path / "nodes" / "node2", name="node2")
    conf = demo.minion_config(tmp_path, "node2", node.minion_config(), 40001, 40002)
    assert conf["id"] == "node2"
    assert conf["master"] == "127.0.0.1"
    assert conf["master_port"] == 40002
    assert conf["expressware"] == node.minion_config()["expressware"]
    assert conf["acceptance_wait_time"] == 1 and conf["loop_interval"] == 1
    master = demo.master_config(tmp_path, 40001, 40002)
    for key in ("root_dir", "pki_dir", "cachedir", "sock_dir"):
        assert conf[key].startswith(str(tmp_path / "salt" / "node2")), key
        assert conf[key] != master[key]


def test_configs_round_trip_through_yaml(tmp_path):
    data = demo.master_config(tmp_path, 40001, 40002)
    confdir = demo.write_config(tmp_path / "conf", "master", data)
    assert yaml.safe_load((tmp_path / "conf" / "master").read_text()) == data
    assert confdir == str(tmp_path / "conf")


def test_free_ports_differ():
    ports = demo.free_ports(2)
    assert len(set(ports)) == 2 and all(0 < p < 65536 for p in ports)


def test_defaults():
    args = demo.parse_args([])
    assert (args.nodes, args.job, args.from_version, args.to_version) == (4, "rolling", "5.25.2", "5.26.0")
    assert (args.build, args.install, args.link_training, args.reboot) == (3.0, 1.0, 1.5, 2.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--nodes", "0"],
        ["--fault", "node5:stop-blocked"],
        ["--fault", "node1:no-such-fault"],
        ["--fault", "node1"],
        ["--job", "other"],
    ],
)
def test_bad_arguments_are_usage_errors(argv):
    with pytest.raises(SystemExit) as exc:
        demo.parse_args(argv)
    assert exc.value.code == 2


# -- the rollout's node_timeout, fitted to the simulated delays ------------------------------


def _slowest_healthy_node(args):
    """The delays of the slowest node that still ends active: its stack starts only after a reboot
    (start-fails-until-reboot: the installer runs twice, then the reboot and link training)."""
    return 2 * args.install + args.reboot + args.link_training


def test_node_timeout_is_fitted_to_the_default_delays():
    args = demo.parse_args([])
    assert args.node_timeout == demo.fitted_node_timeout(args) == 21
    # A healthy node is not timed out: twice its delays and the build's, with room for Salt.
    assert args.node_timeout >= 2 * max(args.build, _slowest_healthy_node(args)) + demo.SALT_SECONDS
    # A fault halts soon: this node's timeout leaves the pre-flight, the build, the nodes before it and
    # the last check their half of the minute (the demo took 51 s from the job's start to the halt
    # of node2:never-active on a loaded 2-core machine).
    assert args.node_timeout <= 30


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--reboot", "10"], 2 * (2 * 1.0 + 10 + 1.5) + 10),
        (["--build", "30"], 2 * 30 + 10),
        (["--install", "0", "--link-training", "0", "--reboot", "0", "--build", "0"], 10),
        (["--link-training", "0.3"], math.ceil(2 * (2 * 1.0 + 2.0 + 0.3) + 10)),
    ],
)
def test_node_timeout_follows_the_delays(argv, expected):
    assert demo.parse_args(argv).node_timeout == expected


def test_node_timeout_given():
    assert demo.parse_args(["--node-timeout", "300", "--reboot", "100"]).node_timeout == 300


@pytest.mark.parametrize("value", ["0", "-5", "604801", "ten"])
def test_bad_node_timeout_is_a_usage_error(value):
    with pytest.raises(SystemExit) as exc:
        demo.parse_args(["--node-timeout", value])
    assert exc.value.code == 2


def test_help_documents_the_fitted_node_timeout(capsys):
    with pytest.raises(SystemExit):
        demo.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--node-timeout SECONDS" in text
    assert "2 x max(build, 2 x install + reboot + link-training) + 10, 21 s with the default delays" in text
    assert "node2:never-active" in text


def test_the_rollout_gets_the_node_timeout(monkeypatch, tmp_path):
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        stdout = '{"rolling.update": "..."}' if "doc.runner" in argv else ""
        return subprocess.CompletedProcess(argv, 0, stdout=stdout)

    monkeypatch.setattr(demo.subprocess, "run", fake_run)
    args = demo.parse_args(["--link-training", "4"])
    assert demo.run_rolling(str(tmp_path), args, ["node1"]) == 0
    job = calls[-1]
    assert job[job.index("rolling.update") + 1 :] == [
        "tgt=*",
        "version=5.26.0",
        "sia=salt://expressware/Dolphin_eXpressWare-5.26.0.sh",
        "applications=[ndbmtd]",
        f"node_timeout={math.ceil(2 * (2 + 2 + 4) + 10)}",
    ]


# -- the picture of the rollout ------------------------------------------------------------


def _recorded_rollout(cachedir):
    fact = {
        "decision": {"action": "install", "reason": "test", "installed": "5.25.2"},
        "node_state": {"active": True, "reasons": []},
        "installed": "5.25.2",
        "grains": {"cpuarch": "x86_64", "os": "Debian", "osrelease": "12", "kernelrelease": "6.1"},
        "workdir": "/w",
    }
    options = {
        "reboot": False,
        "enforce": False,
        "applications": [],
        "node_timeout": 21,
        "compat": None,
        "canary": 0,
        "frontend": None,
        "build": True,
    }
    record = rollout.new_record(
        "20261201T120000-abcdef",
        "default",
        "5.26.0",
        "salt://x.sh",
        {"node1": dict(fact), "node2": dict(fact)},
        options,
        1000.0,
    )
    rollout.mark_phase(record, "node1", rollout.STOPPING, 1001.0)
    rollout.mark_failed(record, "node1", "not active within 21 s", 1022.0)
    expressware_store.rollout_store({"cachedir": str(cachedir)}).save(record)
    return record


def _master_conf(work):
    """The demo's master configuration written (no daemon: ``salt-run rolling.report`` reads the master's cache)."""
    config = demo.master_config(work, 40001, 40002)
    (Path(config["cachedir"]) / "proc").mkdir(parents=True)  # a running master makes it
    return str(demo.write_config(work / "salt" / "master" / "conf", "master", config)), config["cachedir"]


def test_report_written_in_a_kept_work_directory(tmp_path, capsys):
    conf, cachedir = _master_conf(tmp_path)
    record = _recorded_rollout(cachedir)
    args = demo.parse_args(["--keep"])
    path = demo.write_rollout_report(tmp_path, args, conf)
    assert path == tmp_path / "report.html"
    text = path.read_text(encoding="utf-8")
    assert record["id"] in text and "not active within 21 s" in text and "node2" in text
    # Written as an operator writes it.
    assert f"$ salt-run rolling.report rollout={record['id']} path={path}" in capsys.readouterr().out


def test_report_outlasts_a_temporary_work_directory(tmp_path, monkeypatch):
    conf, cachedir = _master_conf(tmp_path / "work")
    record = _recorded_rollout(cachedir)
    monkeypatch.setattr(demo.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = demo.write_rollout_report(tmp_path / "work", demo.parse_args([]), conf)
    assert path == tmp_path / "tmp" / f"expressware-demo-{record['id']}.html" and path.is_file()
    given = demo.write_rollout_report(tmp_path / "work", demo.parse_args(["--report", str(tmp_path / "r.html")]), conf)
    assert given == tmp_path / "r.html" and given.is_file()


def test_no_report_without_a_rollout(tmp_path, capsys):
    conf, _ = _master_conf(tmp_path)
    assert demo.write_rollout_report(tmp_path, demo.parse_args([]), conf) is None
    assert "no rollout was recorded" in capsys.readouterr().out
