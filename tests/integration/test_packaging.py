"""The classic way to install: loader modules in a file root, then saltutil.sync_all.

These daemons must not see the pip-installed package, or the test would prove
nothing: a directory put first on their PYTHONPATH holds a ``saltext.expressware``
that refuses to import, so Salt skips the extension's entry point (it logs and
ignores entry points that fail to load) and only synced modules are there.
"""

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import NEW, OLD, REPO, fresh_node

LOADER_DIRS = ("_modules", "_states", "_runners", "_beacons", "_utils")


@pytest.fixture(scope="module")
def shadow_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("no-entry-point")
    package = root / "saltext" / "expressware"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        'raise ImportError("saltext.expressware is hidden from this classic-mode test")\n'
    )
    return str(root)


def _hide_package(factory, shadow_path):
    # The factories share one environ dict; give this daemon its own copy.
    factory.environ = dict(factory.environ, PYTHONPATH=shadow_path)


@pytest.fixture(scope="module")
def classic_master(salt_factories, shadow_path):
    factory = salt_factories.salt_master_daemon("master-classic", overrides={"timeout": 30})
    tree = factory.state_tree.base.write_path
    for name in LOADER_DIRS:
        shutil.copytree(REPO / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    from expressware_sim import write_sia  # pylint: disable=import-outside-toplevel

    (tree / "expressware").mkdir()
    write_sia(tree / "expressware", NEW)
    _hide_package(factory, shadow_path)
    with factory.started():
        yield factory


@pytest.fixture(scope="module")
def classic_node(tmp_path_factory):
    return fresh_node(tmp_path_factory.mktemp("classic") / "cnode1", "cnode1")


@pytest.fixture(scope="module")
def classic_minion(classic_master, classic_node, shadow_path):
    factory = classic_master.salt_minion_daemon("cnode1", overrides=classic_node.minion_config())
    _hide_package(factory, shadow_path)
    with factory.started():
        yield factory


def test_nothing_loads_before_sync(classic_master, classic_minion):
    """The premise of this module: without a sync the minion has none of the extension."""
    cli = classic_master.salt_cli(timeout=60)
    ret = cli.run("sys.list_modules", minion_tgt="cnode1")
    assert "expressware" not in ret.data and "dis_services" not in ret.data


def test_sync_all_then_modules_work_from_extmods(classic_master, classic_minion, classic_node):
    cli = classic_master.salt_cli(timeout=60)
    ret = cli.run("saltutil.sync_all", minion_tgt="cnode1")
    assert ret.returncode == 0, ret
    for loader, name in [
        ("modules", "expressware"),
        ("modules", "dis_services"),
        ("modules", "sia"),
        ("states", "expressware"),
        ("utils", "expressware_vendor"),
    ]:
        assert f"{loader}.{name}" in ret.data[loader], ret.data

    ret = cli.run("expressware.info", minion_tgt="cnode1")
    assert ret.returncode == 0, ret
    assert ret.data["loaded_from"] == "extmods"
    assert all("/extmods/utils/" in path for path in ret.data["shared"])

    ret = cli.run("expressware.node_state", minion_tgt="cnode1")
    assert ret.data["state"] == "active" and ret.data["installed"] == OLD

    ret = cli.run("sia.install_node", "salt://expressware/Dolphin_eXpressWare-5.26.0.sh", minion_tgt="cnode1")
    assert ret.returncode == 0, ret
    assert classic_node.state()["installed_version"] == NEW


def test_runners_sync_to_master(classic_master, classic_minion):
    run = classic_master.salt_run_cli(timeout=60)
    ret = run.run("saltutil.sync_all")
    assert ret.returncode == 0, ret
    assert "runners.expressware_lease" in ret.data["runners"], ret.data
    assert "runners.rolling" in ret.data["runners"], ret.data
    ret = run.run("expressware_lease.show", "cluster=classic")
    assert ret.returncode == 0, ret
    assert ret.data == {"cluster": "classic", "held": False}
    ret = run.run(
        "rolling.plan", "tgt=cnode1", "version=5.26.0", "sia=salt://expressware/Dolphin_eXpressWare-5.26.0.sh"
    )
    assert ret.returncode == 0, ret
    assert ret.data["status"] == "planned"


def test_pip_install_leaves_the_installed_salt_as_it_is(tmp_path):
    """``salt-pip install`` into a Salt onedir is pip into the Python that runs Salt: installing this package
    there must keep that Salt (setup.cfg declares the range the code works with, not one release). Run in
    each environment of the test matrix (Salt 3006, 3007, 3008), pip would install this package and nothing else.
    """
    import salt.version  # pylint: disable=import-outside-toplevel

    report = tmp_path / "report.json"
    cmdline = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), str(REPO)]
    proc = subprocess.run(cmdline, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    would_install = {
        item["metadata"]["name"]: item["metadata"]["version"] for item in json.loads(report.read_text())["install"]
    }
    assert would_install == {"saltext.expressware": would_install.get("saltext.expressware")}, (
        f"into Salt {salt.version.__version__}, pip would install {would_install}"
    )
