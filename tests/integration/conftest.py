"""A real salt-master and three real salt-minions on loopback, each minion on its own simulated node.

The extension is loaded the pip way (entry points of the installed package); the
classic way (file root + saltutil.sync_all) has its own daemons in test_packaging.py.
"""

import contextlib
import shutil
import time

import pytest

from expressware_sim import service_provider_config, write_sia
from tests.conftest import NEW, NEWER, OLD, OLDER, REPO, fresh_node
from tests.daemons import start_minions

NODE_IDS = ("node1", "node2", "node3")


@pytest.fixture(scope="package")
def cluster_root(tmp_path_factory):
    return tmp_path_factory.mktemp("cluster")


def _utc_hm(seconds_from_now):
    return time.strftime("%H:%M", time.gmtime(time.time() + seconds_from_now))


#: Maintenance windows of two clusters, from when the tests start (test_operator_controls.py, the state under
#: highstate): closed for the next 6 hours; open for the next 3 hours.
WINDOWS = {
    "winclosed": f"daily {_utc_hm(6 * 3600)}-{_utc_hm(7 * 3600)}",
    "winopen": f"daily {_utc_hm(-3600)}-{_utc_hm(3 * 3600)}",
}

#: The master configuration the README documents for this extension.
MASTER_CONFIG = {
    "timeout": 30,
    "file_recv": True,  # not needed (the RPMs travel in job returns); a site may have it on, so the tests do too
    "peer_run": {".*": ["expressware_lease.*", "rolling.request"]},  # the state's update lease; update requests
    "worker_threads": 8,  # README: three nodes' lease calls at once, each looking at the members from a worker
    # Minions allowed to request an update, and within what (tests/integration/test_requests.py).
    "expressware": {
        "reactor": {"allow": {"node1": {"targets": ["node*"], "versions": [NEW], "applications": ["ndbmtd"]}}},
        "window": WINDOWS,
        "window_tz": "UTC",
    },
    "reactor": [{"expressware/update/request": [str(REPO / "salt" / "reactor" / "rolling_update.sls")]}],
}

#: node3 runs another kernel: the cluster has two build groups.
KERNELS = {"node1": "5.14.0-362.el9.x86_64", "node2": "5.14.0-362.el9.x86_64", "node3": "5.14.0-427.el9.x86_64"}


@pytest.fixture(scope="package")
def master(salt_factories):
    factory = salt_factories.salt_master_daemon("master-expressware", overrides=MASTER_CONFIG)
    installers = factory.state_tree.base.write_path / "expressware"
    # The formula as an operator would put it in the file root, beside the installers.
    shutil.copytree(REPO / "salt" / "expressware", installers)
    for version in (OLDER, OLD, NEW, NEWER):
        write_sia(installers, version)
    with factory.started():
        yield factory


@pytest.fixture(scope="package")
def nodes(cluster_root):
    return {node_id: fresh_node(cluster_root / node_id, node_id, kernel=KERNELS[node_id]) for node_id in NODE_IDS}


def master_alive_config(master):
    """The minion settings README "Supported Salt versions" recommends for Salt 3007.

    After a reconnection, a 3007 minion schedules its ``__master_alive`` check (``status.master``) every
    ``master_alive_interval`` seconds even when that is 0, the default: every second. The check looks for a connection
    to the minion's own ``publish_port`` option (4505 unless set), not the port the master announced, so with a
    master on another port it finds none, and the minion drops its connection, reconnects and fires
    ``salt/minion/<id>/start`` every few seconds, losing the returns of the jobs it runs meanwhile. A positive interval
    and the master's real publish port keep the check true (and 3006/3008 behave the same with them).
    """
    return {"master_alive_interval": 60, "publish_port": master.config["publish_port"]}


@pytest.fixture(scope="package")
def minions(master, nodes):
    with contextlib.ExitStack() as stack:
        factories = []
        for node_id in NODE_IDS:
            overrides = dict(nodes[node_id].minion_config(), **service_provider_config())
            # The grain that groups nodes for builds follows the simulated kernel.
            overrides["grains"] = {"kernelrelease": KERNELS[node_id]}
            overrides.update(master_alive_config(master))
            # Salt's default. pytest-salt-factories sets 0.05, and Salt runs beacons every second but counts a
            # beacon's interval in loop intervals: the beacon's 1 s would be 20 s here.
            overrides["loop_interval"] = 1
            factory = master.salt_minion_daemon(node_id, overrides=overrides)
            factories.append(factory)
        start_minions(stack, factories)
        yield factories


@pytest.fixture(autouse=True)
def reset_nodes(nodes):
    """Every test starts from a healthy cluster on the old version."""
    for node_id, node in nodes.items():
        fresh_node(node.root, node_id, kernel=KERNELS[node_id])
    yield


@pytest.fixture
def salt_cli(master, minions):
    return master.salt_cli(timeout=60)


@pytest.fixture
def salt_run_cli(master, minions):
    return master.salt_run_cli(timeout=120)


@pytest.fixture
def salt_call_cli(minions):
    return minions[0].salt_call_cli(timeout=60)


def sia_url(version):
    return f"salt://expressware/Dolphin_eXpressWare-{version}.sh"
