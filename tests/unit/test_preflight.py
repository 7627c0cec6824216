"""The runner's pre-flight with a stand-in for the minions: a minion that did not answer is asked once more.

After a master restart a minion's link to the publisher comes back with a back-off
of seconds; a job published meanwhile is lost without a trace, and the pre-flight
refused a healthy cluster ("node1: did not answer"). Here each answer is chosen.
"""

from tests.shared_code import load

runner = load("rolling", "_runners")
driver_lib = runner.driver_lib

GRAINS = {"cpuarch": "x86_64", "os": "Rocky", "osrelease": "9.3", "kernelrelease": "5.14.0-362.el9.x86_64"}
FACT = {
    "decision": {"action": "install", "reason": "test", "installed": "5.25.2"},
    "installed": "5.25.2",
    "node_state": {"active": True, "reasons": []},
    "grains": GRAINS,
    "workdir": "/var/cache/expressware",
    "sia_error": None,
}


class Minions:
    """Answers to ``expressware.preflight``, one dict per publish; records every call."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, tgt, fun, arg=(), kwarg=None, tgt_type="list", timeout=None):
        assert fun == "expressware.preflight" and arg == ["5.26.0"]
        self.calls.append((tgt, tgt_type, timeout))
        return self.answers.pop(0)


class Salt:
    """The adapter, with the minions' answers chosen by ``minions``."""

    def __init__(self, minions):
        self.call = minions

    @staticmethod
    def time():
        return 100.0


def make_driver(minions):
    args = {
        "tgt": "*",
        "tgt_type": "glob",
        "version": "5.26.0",
        "sia": "salt://x.sh",
        "timeout": 60,
        "options": {"enforce": False, "compat": None, "build": True, "frontend": None},
    }
    return driver_lib.Driver(Salt(minions), rollouts=None, leases=None, args=args, staging=None)


def test_a_minion_silent_at_first_is_asked_once_more_and_counts():
    driver = make_driver(minions := Minions({"node1": False, "node2": FACT, "node3": FACT}, {"node1": FACT}))
    facts, problems = driver.preflight()
    assert problems == []
    assert facts["node1"] == FACT
    # Only the silent one is asked again, by name, briefly.
    assert minions.calls == [("*", "glob", 60), (["node1"], "list", driver_lib.preflight_lib.PREFLIGHT_RETRY)]


def test_a_minion_silent_twice_did_not_answer():
    driver = make_driver(minions := Minions({"node1": False, "node2": FACT, "node3": None}, {"node1": False}))
    facts, problems = driver.preflight()
    assert problems == [("node1", "did not answer"), ("node3", "did not answer")]
    assert minions.calls[1] == (["node1", "node3"], "list", driver_lib.preflight_lib.PREFLIGHT_RETRY)


def test_every_minion_answering_is_asked_once():
    driver = make_driver(minions := Minions({"node1": FACT, "node2": FACT}))
    assert driver.preflight()[1] == []
    assert len(minions.calls) == 1


def test_an_error_answer_is_not_asked_again():
    # An answer that is not a fact (an exception's text) is the minion's word, not silence.
    driver = make_driver(minions := Minions({"node1": "ERROR: boom", "node2": FACT}))
    assert driver.preflight()[1] == [("node1", "error: ERROR: boom")]
    assert len(minions.calls) == 1


def test_a_refused_update_is_said_on_the_bus(monkeypatch):
    # A rollout the reactor started has no terminal: bad input is said on the bus too.
    fired = []
    monkeypatch.setattr(runner, "__opts__", {}, raising=False)
    monkeypatch.setattr(runner.runner_lib.Master, "fire", lambda self, tag, data: fired.append((tag, data)))
    ret = runner.update("*", "5.26", sia="salt://x.sh")
    assert ret["status"] == "refused" and ret["retcode"] == 1
    ((tag, data),) = fired
    assert tag == "expressware/rolling/refused"
    assert data == {"cluster": "default", "version": "5.26", "reason": ret["comment"]}
    assert "is not an eXpressWare version" in data["reason"]
