"""Installing the Cluster Management Node (frontend) packages with sia.install_frontend."""

import pytest
from salt.exceptions import CommandExecutionError

from expressware_sim import create_node, write_sia
from tests.conftest import NEW, OLD


@pytest.fixture
def frontend(tmp_path, configure):
    node = create_node(tmp_path / "fe", name="fe", version=OLD, role="frontend", build=0.1, install=0.1)
    for key, value in node.minion_config()["expressware"].items():
        configure(key, value)
    return node


def test_install_frontend(modules, frontend, tmp_path):
    sia = write_sia(tmp_path, NEW)
    ret = modules.sia.install_frontend(str(sia))
    assert ret["options"][0] == "--install-frontend"
    assert frontend.state()["frontend_version"] == NEW


def test_install_frontend_on_a_node_is_refused_by_the_installer(modules, node, tmp_path):
    with pytest.raises(CommandExecutionError, match="exit status 4"):
        modules.sia.install_frontend(str(write_sia(tmp_path, NEW)))
