"""A real salt-master and four real salt-minions on loopback, in two clusters (the grain ``expressware:cluster``):
``fa`` (fa1, fa2) and ``fb`` (fb1, fb2). The first node of each cluster runs one kernel, the second another, so the
fleet has two build groups that span both clusters."""

import contextlib
import shutil

import pytest

from expressware_sim import service_provider_config, write_sia
from tests.conftest import NEW, OLD, REPO, fresh_node
from tests.daemons import start_minions
from tests.integration.conftest import MASTER_CONFIG, master_alive_config

CLUSTERS = {"fa": ("fa1", "fa2"), "fb": ("fb1", "fb2")}
NODE_IDS = tuple(m for nodes in CLUSTERS.values() for m in nodes)
CLUSTER_OF = {m: cluster for cluster, nodes in CLUSTERS.items() for m in nodes}
KERNELS = {m: ("5.14.0-362.el9.x86_64" if m.endswith("1") else "5.14.0-427.el9.x86_64") for m in NODE_IDS}


@pytest.fixture(scope="package")
def master(salt_factories):
    config = {k: v for k, v in MASTER_CONFIG.items() if k not in ("reactor",)}
    factory = salt_factories.salt_master_daemon("master-fleet", overrides=config)
    installers = factory.state_tree.base.write_path / "expressware"
    shutil.copytree(REPO / "salt" / "expressware", installers)
    for version in (OLD, NEW):
        write_sia(installers, version)
    with factory.started():
        yield factory


@pytest.fixture(scope="package")
def nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    return {m: fresh_node(root / m, m, kernel=KERNELS[m]) for m in NODE_IDS}


@pytest.fixture(scope="package")
def minions(master, nodes):
    with contextlib.ExitStack() as stack:
        factories = []
        for node_id in NODE_IDS:
            overrides = dict(nodes[node_id].minion_config(), **service_provider_config())
            overrides["grains"] = {"kernelrelease": KERNELS[node_id], "expressware": {"cluster": CLUSTER_OF[node_id]}}
            overrides.update(master_alive_config(master))
            factory = master.salt_minion_daemon(node_id, overrides=overrides)
            factories.append(factory)
        start_minions(stack, factories)
        yield factories


@pytest.fixture(autouse=True)
def reset_nodes(nodes):
    """Every test starts from healthy clusters on the old version, each node running an NDB data node."""
    for node_id, node in nodes.items():
        fresh_node(node.root, node_id, kernel=KERNELS[node_id]).add_application("ndbmtd")
    yield


@pytest.fixture
def salt_run_cli(master, minions):
    return master.salt_run_cli(timeout=240)
