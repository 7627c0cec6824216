"""The runner's staging of built RPMs (``do_stage``) with a stand-in for the minions.

The builder pushes its RPMs to the master while it is itself updated (its go-ahead
does not wait for the push). These tests pin what happens when that push cannot
be done then (the builder reboots, its minion does not answer), when it fails for
good, and after an interruption (the master has them already). The same paths run
on real daemons in the integration tests; here each answer is chosen.
"""

import hashlib
import os

import pytest

from tests.shared_code import load

runner = load("rolling", "_runners")
plan_lib = runner.plan_lib
driver_lib = runner.driver_lib

GRAINS = {"cpuarch": "x86_64", "os": "Rocky", "osrelease": "9.3", "kernelrelease": "5.14.0-362.el9.x86_64"}
OPTIONS = {
    "reboot": False,
    "enforce": False,
    "applications": [],
    "node_timeout": 60,
    "compat": None,
    "canary": 0,
    "frontend": None,
    "build": True,
}
RPMS = ["Dolphin-PX-5.26.0-1.x86_64.rpm", "Dolphin-SISCI-5.26.0-1.x86_64.rpm"]


class Minions:
    """Answers of the minions, by function; records every call."""

    def __init__(self, source, push_answers):
        self.source = source
        self.push_answers = list(push_answers)
        self.calls = []

    def __call__(self, tgt, fun, arg=(), kwarg=None, tgt_type="list", timeout=None):
        self.calls.append((fun, list(tgt)))
        if fun == "cp.push_dir":
            answer = self.push_answers.pop(0)
            if answer is True:
                os.makedirs(self.source, exist_ok=True)
                for name in RPMS:
                    with open(os.path.join(self.source, name), "wb") as handle:
                        handle.write(name.encode())
            return {tgt[0]: answer}
        if fun == "sia.receive_rpms":
            digests = {name: hashlib.sha256(name.encode()).hexdigest() for name in RPMS}
            return {minion: {"sha256": digests} for minion in tgt}
        raise AssertionError(f"unexpected call {fun}")


class Salt:
    """The adapter: the minions' answers chosen by ``call``; what the driver fires is kept."""

    def __init__(self):
        self.call = None
        self.fired = []

    def fire(self, tag, data):
        self.fired.append(tag)

    @staticmethod
    def time():
        return 100.0


@pytest.fixture
def driver(tmp_path):
    facts = {
        m: {
            "decision": {"action": "install", "reason": "test", "installed": "5.25.2"},
            "installed": "5.25.2",
            "node_state": {"active": True, "reasons": []},
            "grains": GRAINS,
            "workdir": "/var/cache/expressware",
        }
        for m in ("node1", "node2", "node3")
    }
    record = plan_lib.new_record("r1", "default", "5.26.0", "salt://x.sh", facts, dict(OPTIONS), 100.0)
    (key,) = record["groups"]
    plan_lib.mark_built(record, key, RPMS, 101.0)
    group = record["groups"][key]
    group["source"] = str(tmp_path / "master" / "node_RPMS")
    group["builder_workdir"] = "/var/cache/expressware"
    salt = Salt()
    driver = driver_lib.Driver(
        salt,
        rollouts=None,
        leases=None,
        args={"timeout": 5},
        staging=runner.driver_lib.staging_lib.Staging(salt, str(tmp_path / "master")),
    )
    driver.record = record
    return driver, key


def test_a_push_not_done_while_the_builder_is_in_flight_is_done_before_the_next_node(driver):
    driver, key = driver
    driver.salt.call = minions = Minions(driver.record["groups"][key]["source"], [False, True])
    plan_lib.mark_phase(driver.record, "node1", plan_lib.STOPPING, 102.0)
    assert driver.do_stage(key, background=True) is False
    assert driver.record["status"] == plan_lib.RUNNING and not driver.record["groups"][key]["staged"]
    assert "again before the next node" in driver.record["log"][-1]["message"]
    assert "node1 did not push its RPMs to the master (no answer" in driver.record["log"][-1]["message"]
    plan_lib.mark_active(driver.record, "node1", "5.26.0", 103.0)
    assert plan_lib.next_action(driver.record) == ("stage", key)
    assert driver.do_stage(key) is True
    assert driver.record["groups"][key]["staged"]
    assert minions.calls == [
        ("cp.push_dir", ["node1"]),
        ("cp.push_dir", ["node1"]),
        ("sia.receive_rpms", ["node2", "node3"]),
    ]
    assert plan_lib.next_action(driver.record) == ("update", "node2")


def test_a_push_that_fails_before_the_next_node_halts_it(driver):
    driver, key = driver
    driver.salt.call = minions = Minions(driver.record["groups"][key]["source"], ["cp.push_dir: file_recv is False"])
    assert driver.do_stage(key) is False
    assert driver.record["status"] == plan_lib.HALTED
    assert driver.record["reason"] == (
        f"staging for {key} failed: node1 could not push its RPMs to the master "
        "(file_recv?): cp.push_dir: file_recv is False"
    )
    assert [fun for fun, _ in minions.calls] == ["cp.push_dir"]  # nothing sent to the other nodes
    assert plan_lib.next_action(driver.record) is None


def test_a_push_that_leaves_rpms_missing_halts(driver):
    driver, key = driver

    class Partial(Minions):
        def __call__(self, tgt, fun, arg=(), kwarg=None, tgt_type="list", timeout=None):
            answer = super().__call__(tgt, fun, arg, kwarg, tgt_type, timeout)
            os.remove(os.path.join(self.source, RPMS[1]))
            return answer

    driver.salt.call = Partial(driver.record["groups"][key]["source"], [True])
    assert driver.do_stage(key) is False
    assert driver.record["reason"].endswith(f"the master did not receive {RPMS[1]} from node1")


def test_rpms_already_on_the_master_are_not_pushed_again(driver):
    driver, key = driver
    source = driver.record["groups"][key]["source"]
    Minions(source, [True])(["node1"], "cp.push_dir")  # pushed before an interruption
    driver.salt.call = minions = Minions(source, [])
    assert driver.do_stage(key) is True
    assert minions.calls == [("sia.receive_rpms", ["node2", "node3"])]
