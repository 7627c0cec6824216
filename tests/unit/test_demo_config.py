"""The demo's generated Salt configuration and its command line (no daemons are started)."""

import getpass

import pytest
import yaml
from expressware_sim import create_node

from saltext.expressware import demo


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
