"""A minion calling the rolling runner through ``peer_run`` (``publish.runner``) may only ask (``rolling.request``):
every function that acts on a cluster or shows its rollouts is for the master. An operator whose ``peer_run`` lets
minions call ``rolling.*`` must not thereby let one node start, resume or abort the rollout of every node.

The real-daemon side of who may ask is in tests/integration/test_requests.py."""

import pytest

from tests.shared_code import load

rolling = load("rolling", "_runners")
REFUSED = {"update", "plan", "resume", "abort", "status"}


@pytest.fixture
def as_caller(tmp_path, monkeypatch):
    """Run the runner with the options the master gives a runner: ``id`` is the caller's."""
    (tmp_path / "pki" / "minions").mkdir(parents=True)
    (tmp_path / "pki" / "minions" / "node1").write_text("a key")
    fired = []
    monkeypatch.setattr(rolling.runner_lib.Master, "fire", lambda self, tag, data: fired.append((tag, data)))

    def configure(caller_id):
        opts = {"id": caller_id, "pki_dir": str(tmp_path / "pki"), "cachedir": str(tmp_path / "cache")}
        monkeypatch.setattr(rolling, "__opts__", opts, raising=False)
        return fired

    return configure


def call(fun):
    args = {"update": {"tgt": "*", "version": "5.26.0"}, "plan": {"tgt": "*", "version": "5.26.0"}}.get(fun, {})
    return getattr(rolling, fun)(**args)


@pytest.mark.parametrize("fun", sorted(REFUSED))
def test_a_minion_is_refused_and_nothing_is_recorded(as_caller, tmp_path, fun):
    fired = as_caller("node1")
    result = call(fun)
    assert result["status"] == "refused" and result["retcode"] == 1, result
    assert f"rolling.{fun} is for the master: node1 is a minion" in result["comment"]
    assert not (tmp_path / "cache" / "expressware").exists()  # no lease, no record
    if fun == "update":  # said on the bus like every refusal of update
        assert [tag for tag, _ in fired] == ["expressware/rolling/refused"]


def test_the_master_is_not_taken_for_a_minion(as_caller):
    as_caller("saltmaster_master")  # salt-run keeps the master's own id, which is no accepted minion key
    assert rolling._master_only("status") is None  # pylint: disable=protected-access
