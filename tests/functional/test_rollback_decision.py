"""The rollback's downgrade (``downgrade_from``) in the execution module: allowed without ``enforce`` only when the
node is on exactly the version the rolled-back rollout installed; any other node or version is refused, named."""

import pytest
from salt.exceptions import SaltInvocationError

from tests.conftest import NEW, NEWER, OLD, OLDER, fresh_node


def test_the_downgrade_is_allowed_only_from_the_version_given(modules, node):
    fresh_node(node.root, "fnode", version=NEW)
    decision = modules.expressware.check_update(OLD, downgrade_from=NEW)
    assert decision["action"] == "install" and decision["downgrade"] is True, decision
    assert f"rollback from {NEW}" in decision["reason"]
    # Without it, the same downgrade needs enforce, as ever.
    refused = modules.expressware.check_update(OLD)
    assert refused["action"] == "refuse" and "enforce" in refused["reason"] and "downgrade" not in refused
    # The node is on another version than the one the rollout installed: refused, naming both.
    decision = modules.expressware.check_update(OLD, downgrade_from=NEWER)
    assert decision["action"] == "refuse" and f"only from {NEWER}" in decision["reason"], decision
    # Only a downgrade is widened: an update or the version already there decides as without it.
    assert modules.expressware.check_update(NEWER, downgrade_from=NEW)["action"] == "install"
    assert "downgrade" not in modules.expressware.check_update(NEWER, downgrade_from=NEW)
    assert modules.expressware.check_update(NEW, downgrade_from=NEW)["action"] == "none"
    with pytest.raises(SaltInvocationError, match="not an eXpressWare version"):
        modules.expressware.check_update(OLD, downgrade_from="latest")


def test_the_preflight_passes_it_on(modules, node):
    fresh_node(node.root, "fnode", version=NEW)
    assert modules.expressware.preflight(OLDER, downgrade_from=NEW)["decision"]["downgrade"] is True
    assert modules.expressware.preflight(OLDER, downgrade_from=OLD)["decision"]["action"] == "refuse"
