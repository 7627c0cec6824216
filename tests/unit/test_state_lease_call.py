"""The state's lease calls to the master (``publish.runner``): a request that timed out on a busy master is asked
again (each lease call means the same when repeated), a missing answer is an error naming the likely cause."""

import pytest
from salt.exceptions import CommandExecutionError

from tests.shared_code import load

state = load("expressware", "_states")

TIMED_OUT = "'expressware_lease.acquire' runner publish timed out"  # publish.runner's own words


@pytest.fixture
def answers(monkeypatch):
    """publish.runner answering from a list, in turn; the calls made."""
    calls, queue = [], []

    def publish_runner(fun, arg=None, timeout=5):
        calls.append((fun, arg, timeout))
        return queue.pop(0)

    monkeypatch.setattr(state, "__salt__", {"publish.runner": publish_runner}, raising=False)
    monkeypatch.setattr(state.time, "sleep", lambda seconds: None)
    return queue, calls


def test_a_timed_out_request_is_asked_again(answers):
    queue, calls = answers
    queue.extend([TIMED_OUT, {"granted": True, "holder": "node1"}])
    assert state._lease_call("acquire", "db1", "expected=60") == {"granted": True, "holder": "node1"}
    assert calls == [("expressware_lease.acquire", ["cluster=db1", "expected=60"], 30)] * 2


def test_a_master_that_never_answers_is_an_error_after_the_last_try(answers):
    queue, calls = answers
    queue.extend([TIMED_OUT] * state.LEASE_CALL_TRIES)
    with pytest.raises(CommandExecutionError, match="did not answer expressware_lease.acquire.*peer_run"):
        state._lease_call("acquire", "db1")
    assert len(calls) == state.LEASE_CALL_TRIES


def test_other_answers_are_not_asked_again(answers):
    queue, calls = answers
    queue.extend(["No access to master. If using salt-call with --local, please remove."])
    with pytest.raises(CommandExecutionError, match="did not answer"):
        state._lease_call("show", "db1")
    queue.extend([{"status": "refused", "comment": "cluster must be a name"}])
    with pytest.raises(CommandExecutionError, match="refused: cluster must be a name"):
        state._lease_call("show", "db1")
    assert len(calls) == 2
