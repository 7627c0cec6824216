"""Two real salt-masters sharing one key pair (Salt's multi-master, "hot" mode) and two real salt-minions connected
to both, each minion on its own simulated node. Both masters keep the extension's leases and rollout records in one
directory (``expressware:store``), as README "Two masters" says to configure them; here a local directory stands for
the file system both would mount.

The masters listen on one host: master 1 on 127.0.0.1, master 2 on 127.0.0.2 with the same ports (as Salt's own
multi-master scenario tests do), so a minion reaches both with one ``master_port`` and one ``publish_port``.
"""

import contextlib
import shutil

import pytest

from expressware_sim import service_provider_config, write_sia
from tests.conftest import NEW, OLD, REPO, fresh_node
from tests.daemons import start_minions
from tests.integration.conftest import master_alive_config
from tests.shared_code import load

NODE_IDS = ("node1", "node2")
KERNEL = "5.14.0-362.el9.x86_64"

#: The build long enough that master 2 is asked while master 1 builds (the test checks the timing); a test that needs
#: another pace sets its nodes' delays itself.
SLOW_DELAYS = {"build": 12.0, "install": 3.0}


@pytest.fixture(scope="package")
def shared_store(tmp_path_factory):
    """The directory both masters would mount (NFSv4, CephFS): one local directory here."""
    return tmp_path_factory.mktemp("shared-store")


#: This test's own settings: master 1's address; the minions' keys accepted at once (no salt-key run per minion and
#: master: the setup is the slow part of this package).
TEST_MASTER = {"interface": "127.0.0.1", "auto_accept": True}


def master_config(shared_store):
    """What README "Two masters" sets on both masters (besides the extension's usual settings)."""
    return {
        "timeout": 30,
        "file_recv": True,
        "peer_run": {".*": ["expressware_lease.*"]},
        "expressware": {"store": str(shared_store)},
    }


def _file_root(factory):
    installers = factory.state_tree.base.write_path / "expressware"
    shutil.copytree(REPO / "salt" / "expressware", installers)
    for version in (OLD, NEW):
        write_sia(installers, version)


@pytest.fixture(scope="package")
def master1(salt_factories, shared_store):
    factory = salt_factories.salt_master_daemon(
        "mm-master-1", overrides=dict(master_config(shared_store), **TEST_MASTER)
    )
    _file_root(factory)
    with factory.started():
        yield factory


@pytest.fixture(scope="package")
def master2(salt_factories, shared_store, master1):
    overrides = dict(master_config(shared_store), **dict(TEST_MASTER, interface="127.0.0.2"))
    for key in ("ret_port", "publish_port"):
        overrides[key] = master1.config[key]
    factory = salt_factories.salt_master_daemon("mm-master-2", overrides=overrides)
    _file_root(factory)
    # One key pair for both masters: a minion trusts either.
    for keyfile in ("master.pem", "master.pub"):
        shutil.copyfile(f"{master1.config['pki_dir']}/{keyfile}", f"{factory.config['pki_dir']}/{keyfile}")
    with factory.started():
        yield factory


@pytest.fixture(scope="package")
def nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("mm-cluster")
    return {node_id: fresh_node(root / node_id, node_id, kernel=KERNEL, **SLOW_DELAYS) for node_id in NODE_IDS}


@pytest.fixture(scope="package")
def minions(master1, master2, nodes):
    with contextlib.ExitStack() as stack:
        factories = []
        for node_id in NODE_IDS:
            overrides = dict(nodes[node_id].minion_config(), **service_provider_config())
            overrides["grains"] = {"kernelrelease": KERNEL}  # the simulated node's kernel: one build group
            overrides.update(master_alive_config(master1))  # one publish port for both masters
            overrides["master"] = [master1.config["interface"], master2.config["interface"]]
            factory = master1.salt_minion_daemon(node_id, overrides=overrides)
            factories.append(factory)
        start_minions(stack, factories)
        for master in (master1, master2):
            _wait_for_minions(master)
        yield factories


def _wait_for_minions(master, timeout=120):
    """Every minion answers ``test.ping`` published by ``master`` (the connection to master 2 comes up on its own)."""
    import time  # pylint: disable=import-outside-toplevel

    cli = master.salt_cli(timeout=30)
    deadline = time.monotonic() + timeout
    while True:
        ret = cli.run("--timeout=10", "test.ping", minion_tgt="*", _timeout=30)
        if isinstance(ret.data, dict) and sorted(ret.data) == list(NODE_IDS):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"minions {NODE_IDS} did not all answer {master.id}: {ret.data!r}")
        time.sleep(2)


@pytest.fixture(autouse=True)
def reset_nodes(nodes, master1):
    """Every test starts from a healthy cluster on the old version, an NDB data node on each, and leaves the cluster's
    lease free (a test that failed midway would hold it)."""
    for node_id, node in nodes.items():
        fresh_node(node.root, node_id, kernel=KERNEL, **SLOW_DELAYS).add_application("ndbmtd")
    yield
    load("expressware_store").lease_store(master1.config).release("default")
