"""Salt's loaders in-process (no daemons), one simulated node per test."""

import pytest
from saltfactories.utils.functional import Loaders

from tests.conftest import fresh_node


@pytest.fixture(scope="module")
def node_root(tmp_path_factory):
    return tmp_path_factory.mktemp("functional") / "node"


@pytest.fixture(scope="module")
def minion_factory(salt_factories, node_root, tmp_path_factory):
    """The minion's configuration (never started as a daemon; ``salt-call --local`` may use it)."""
    node = fresh_node(node_root, "fnode")
    state_tree = tmp_path_factory.mktemp("state-tree")
    return salt_factories.salt_minion_daemon(
        "functional-minion",
        overrides={"file_client": "local", "file_roots": {"base": [str(state_tree)]}, **node.minion_config()},
    )


@pytest.fixture(scope="module")
def minion_opts(minion_factory):
    return minion_factory.config.copy()


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts, loaded_base_name=f"{__name__}.loaded")


@pytest.fixture
def node(node_root, loaders):
    """A healthy node on the old version, and loaders with fresh state."""
    loaders.reset_state()
    return fresh_node(node_root, "fnode")


@pytest.fixture
def modules(loaders):
    return loaders.modules


@pytest.fixture
def configure(modules, monkeypatch):
    """Set ``expressware:<key>`` in the configuration the loaded modules read (``config.get``), for one test.

    The loaders copy the minion options when they are created (Salt 3006 and 3007 copy them
    outright; 3008 copies on write), so a change to ``minion_opts`` afterwards is not seen by
    the modules on every Salt. The mapping ``config.get`` returns is the loaded modules' own.
    """
    live = modules.config.get("expressware")
    assert isinstance(live, dict) and "prefix" in live

    def configure_(key, value):
        monkeypatch.setitem(live, key, value)

    return configure_
