"""A master of masters, one syndic (its salt-master, salt-minion and salt-syndic) and three minions under the syndic
master, each minion on its own simulated node: Salt's own syndic topology on loopback.

The extension is loaded the pip way on every daemon. The configuration is the one README ("Through a master of
masters (syndic)") documents: the rolling runner runs on the master of masters; the installers are served by the
syndic master, the minions' own master; the syndic master answers the minions' ``peer_run`` calls, from the records
and leases of the master of masters: both masters name one ``expressware:store`` (a directory they share; here both
run on one host).
"""

import contextlib
import shutil

import pytest

from expressware_sim import service_provider_config, write_sia
from tests.conftest import NEW, OLD, REPO, fresh_node
from tests.daemons import start_minions
from tests.integration.conftest import master_alive_config

NODE_IDS = ("node1", "node2", "node3")
#: The syndic's id: its salt-master, salt-minion and salt-syndic share it.
SYNDIC_ID = "syndic-expressware"

#: node3 runs another kernel: the cluster has two build groups (one build is staged through the syndic).
KERNELS = {"node1": "5.14.0-362.el9.x86_64", "node2": "5.14.0-362.el9.x86_64", "node3": "5.14.0-427.el9.x86_64"}

#: The master of masters, where ``salt-run rolling.*`` runs (README).
MASTER_OF_MASTERS_CONFIG = {
    "timeout": 30,
    "order_masters": True,
}

#: The syndic master, the minions' own master (README).
SYNDIC_MASTER_CONFIG = {
    "timeout": 30,
    "peer_run": {".*": ["expressware_lease.*", "rolling.request"]},
}


@pytest.fixture(scope="package")
def cluster_root(tmp_path_factory):
    return tmp_path_factory.mktemp("syndic-cluster")


@pytest.fixture(scope="package")
def shared_store(tmp_path_factory):
    """The directory both masters keep the leases and the records in (README: ``expressware:store``)."""
    return str(tmp_path_factory.mktemp("syndic-store"))


@pytest.fixture(scope="package")
def master_of_masters(salt_factories, shared_store):
    factory = salt_factories.salt_master_daemon(
        "mom-expressware",
        order_masters=True,
        overrides=dict(MASTER_OF_MASTERS_CONFIG, expressware={"store": shared_store}),
    )
    with factory.started():
        yield factory


#: The syndic master's address: its own, since it must publish on the master of masters' publish port.
SYNDIC_MASTER_ADDRESS = "127.0.0.2"


@pytest.fixture(scope="package")
def syndic(master_of_masters, shared_store):
    # The salt-syndic connects to the master of masters' publisher on the port of its own configuration's
    # ``publish_port`` (the syndic master's), not the one the master of masters announces: both masters must
    # publish on one port (4505 for both, by default; here the test's port, on two addresses). README says so.
    publish_port = master_of_masters.config["publish_port"]
    factory = master_of_masters.salt_syndic_daemon(
        SYNDIC_ID,
        defaults={"interface": SYNDIC_MASTER_ADDRESS, "publish_port": publish_port},
        master_overrides=dict(
            SYNDIC_MASTER_CONFIG,
            interface=SYNDIC_MASTER_ADDRESS,
            publish_port=publish_port,
            expressware={"store": shared_store},
        ),
        minion_overrides={"master": SYNDIC_MASTER_ADDRESS, "publish_port": publish_port},
    )
    installers = factory.master.state_tree.base.write_path / "expressware"
    # The installers are served by the minions' own master.
    shutil.copytree(REPO / "salt" / "expressware", installers)
    for version in (OLD, NEW):
        write_sia(installers, version)
    with factory.started():
        yield factory


@pytest.fixture(scope="package")
def syndic_master(syndic):
    return syndic.master


@pytest.fixture(scope="package")
def nodes(cluster_root):
    return {node_id: fresh_node(cluster_root / node_id, node_id, kernel=KERNELS[node_id]) for node_id in NODE_IDS}


@pytest.fixture(scope="package")
def minions(syndic_master, nodes):
    with contextlib.ExitStack() as stack:
        factories = []
        for node_id in NODE_IDS:
            overrides = dict(nodes[node_id].minion_config(), **service_provider_config())
            # README: a prepared job asks its own master (the syndic master, which reads the master of masters'
            # records in the shared store) whether it is still wanted. Asked every second: while the rollout's driver
            # runs it must answer yes (no node is updated "the ordinary way"), once it was killed no (the job ends).
            overrides["expressware"]["gate_check_interval"] = 1
            overrides["grains"] = {"kernelrelease": KERNELS[node_id]}
            overrides.update(master_alive_config(syndic_master))
            overrides["master"] = f"{SYNDIC_MASTER_ADDRESS}:{syndic_master.config['ret_port']}"
            factory = syndic_master.salt_minion_daemon(node_id, overrides=overrides)
            factories.append(factory)
        start_minions(stack, factories)
        yield factories


@pytest.fixture(autouse=True)
def reset_nodes(nodes):
    """Every test starts from a healthy cluster on the old version, an NDB data node on each."""
    for node_id, node in nodes.items():
        fresh_node(node.root, node_id, kernel=KERNELS[node_id]).add_application("ndbmtd")
    yield


def sia_url(version):
    return f"salt://expressware/Dolphin_eXpressWare-{version}.sh"
