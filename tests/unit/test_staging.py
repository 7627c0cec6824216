"""The runner's staging of built RPMs (``do_stage``) with a stand-in for the minions.

The builder pushes its RPMs to the master (in the answers of ``sia.read_rpms``)
while it is itself updated (its go-ahead does not wait for the push). These tests
pin what happens when that push cannot be done then (the builder reboots, its
minion does not answer), when it fails for good, when what arrives is not what was
built, and after an interruption (the master has them already). The same paths run
on real daemons in the integration tests (through a syndic too); here each answer
is chosen.
"""

import base64
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


#: The builder's RPMs: one of them longer than a payload (it comes in several answers).
CONTENT = {RPMS[0]: b"px" * 700, RPMS[1]: b"sisci"}
PAYLOAD = 1000


def read_rpms(names, offset=0, size=PAYLOAD):
    """What ``sia.read_rpms`` on the builder answers (the function itself: tests/functional)."""
    pieces, start, position = [], offset, 0
    for name in names:
        content = CONTENT[name]
        if size and position <= start < position + len(content):
            piece = content[start - position : start - position + size]
            pieces.append({"name": name, "data": base64.b64encode(piece).decode(), "append": start > position})
            start, size = start + len(piece), size - len(piece)
        position += len(content)
    digests = {name: hashlib.sha256(CONTENT[name]).hexdigest() for name in names}
    return {"pieces": pieces, "next": start if start < position else None, "sha256": digests}


class Minions:
    """Answers of the minions, by function; records every call. ``push_answers``: one per push attempt, True for
    the builder's real answers, anything else as its answer to the first ``sia.read_rpms`` of that attempt."""

    def __init__(self, push_answers):
        self.push_answers = list(push_answers)
        self.calls = []

    def __call__(self, tgt, fun, arg=(), kwarg=None, tgt_type="list", timeout=None):
        self.calls.append((fun, list(tgt)))
        if fun == "sia.read_rpms":
            if kwarg["offset"] == 0:
                self.answer = self.push_answers.pop(0)
            if self.answer is True:
                return {tgt[0]: self.answered(read_rpms(arg[0], kwarg["offset"], kwarg["size"]))}
            return {tgt[0]: self.answer}
        if fun == "sia.receive_rpms":
            digests = {name: hashlib.sha256(CONTENT[name]).hexdigest() for name in RPMS}
            return {minion: {"sha256": digests} for minion in tgt}
        raise AssertionError(f"unexpected call {fun}")

    @staticmethod
    def answered(answer):
        return answer


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
        staging=runner.driver_lib.staging_lib.Staging(salt, str(tmp_path / "master"), payload=PAYLOAD),
    )
    driver.record = record
    return driver, key


def test_a_push_not_done_while_the_builder_is_in_flight_is_done_before_the_next_node(driver):
    driver, key = driver
    driver.salt.call = minions = Minions([False, True])
    plan_lib.mark_phase(driver.record, "node1", plan_lib.STOPPING, 102.0)
    assert driver.do_stage(key, background=True) is False
    assert driver.record["status"] == plan_lib.RUNNING and not driver.record["groups"][key]["staged"]
    assert "again before the next node" in driver.record["log"][-1]["message"]
    assert "node1 did not push its RPMs to the master (no answer" in driver.record["log"][-1]["message"]
    plan_lib.mark_active(driver.record, "node1", "5.26.0", 103.0)
    assert plan_lib.next_action(driver.record) == ("stage", key)
    assert driver.do_stage(key) is True
    assert driver.record["groups"][key]["staged"]
    # 1405 bytes in answers (and publishes) of 1000 at most: two each way.
    assert minions.calls == [
        ("sia.read_rpms", ["node1"]),
        ("sia.read_rpms", ["node1"]),
        ("sia.read_rpms", ["node1"]),
        ("sia.receive_rpms", ["node2", "node3"]),
        ("sia.receive_rpms", ["node2", "node3"]),
    ]
    source = driver.record["groups"][key]["source"]
    assert {name: open(os.path.join(source, name), "rb").read() for name in RPMS} == CONTENT
    assert plan_lib.next_action(driver.record) == ("update", "node2")


def test_a_push_that_fails_before_the_next_node_halts_it(driver):
    driver, key = driver
    error = "ERROR executing 'sia.read_rpms': could not read the RPMs in /var/cache/expressware/node_RPMS"
    driver.salt.call = minions = Minions([error])
    assert driver.do_stage(key) is False
    assert driver.record["status"] == plan_lib.HALTED
    assert driver.record["reason"] == (
        f"staging for {key} failed: node1 could not push its RPMs to the master: {error!r}"
    )
    assert [fun for fun, _ in minions.calls] == ["sia.read_rpms"]  # nothing sent to the other nodes
    assert plan_lib.next_action(driver.record) is None


def test_rpms_that_arrive_other_than_built_halt_and_are_not_kept(driver):
    driver, key = driver

    class Garbled(Minions):
        @staticmethod
        def answered(answer):
            for piece in answer["pieces"]:
                piece["data"] = base64.b64encode(b"x" + base64.b64decode(piece["data"])).decode()
            return answer

    driver.salt.call = minions = Garbled([True])
    assert driver.do_stage(key) is False
    assert driver.record["reason"].endswith(f"the master did not receive {RPMS[0]} from node1 whole (SHA-256)")
    assert "sia.receive_rpms" not in [fun for fun, _ in minions.calls]
    assert not os.path.exists(driver.record["groups"][key]["source"])


@pytest.mark.parametrize(
    "answer",
    [
        {"pieces": [{"name": "../../etc/passwd.rpm", "data": "eA==", "append": False}], "next": None, "sha256": {}},
        {"pieces": [], "next": 0, "sha256": {}},  # no progress: it would never end
        {"pieces": [{"name": RPMS[0], "data": "not base64!", "append": False}], "next": None, "sha256": {}},
    ],
    ids=["a-name-not-built", "no-progress", "not-base64"],
)
def test_an_answer_of_the_wrong_shape_halts(driver, answer):
    driver, key = driver
    driver.salt.call = Minions([answer])
    assert driver.do_stage(key) is False
    assert driver.record["status"] == plan_lib.HALTED
    assert "node1 " in driver.record["reason"] and "RPM" in driver.record["reason"]


def test_rpms_already_on_the_master_are_not_pushed_again(driver):
    driver, key = driver
    driver.salt.call = Minions([True])
    driver.staging.push(driver.record["groups"][key], 5)  # pushed before an interruption
    driver.salt.call = minions = Minions([])
    assert driver.do_stage(key) is True
    assert [fun for fun, _ in minions.calls] == ["sia.receive_rpms", "sia.receive_rpms"]


def test_a_builder_naming_files_outside_the_masters_directory_is_refused(tmp_path):
    staging = runner.driver_lib.staging_lib.Staging(None, str(tmp_path))

    class Salt:
        @staticmethod
        def call(tgt, fun, arg=(), kwarg=None, timeout=None):
            return {tgt[0]: {"node_rpms": ["../../../cache/x.rpm"]}}

    staging.salt = Salt()
    with pytest.raises(runner.driver_lib.staging_lib.StagingError, match="named no RPM files the master can keep"):
        staging.build("node1", "salt://x.sh", "/var/cache/expressware", 5)
    with pytest.raises(runner.driver_lib.staging_lib.StagingError, match="cannot name a directory"):
        staging.pushed_to("../node1", "/var/cache/expressware")
