"""``expressware_lease.gate_wanted``: the master's answer to a prepared job waiting at its gate.

The runner function is loaded as a plain module over a temporary master cache; the
rollout records are written with the extension's own store. The job's side (it asks
every ``expressware:gate_check_interval`` seconds and ends when the answer is no)
runs on real daemons in ``tests/integration/test_faults.py``.
"""

import os
import socket
import subprocess
import sys

import pytest

from tests.shared_code import load

lease_runner = load("expressware_lease", "_runners")
store = load("expressware_store")
rollout = load("expressware_rollout")

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
ROLLOUT = "20261127T093042-4665d1"
GATE = f"{ROLLOUT}:9a87b8fd"


@pytest.fixture
def driver_process():
    """A process that looks like a ``salt-run`` (its command line says salt)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "salt-run"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def master(tmp_path, monkeypatch):
    """The module's ``__opts__`` over an empty master cache; ``save`` writes a rollout."""
    opts = {"cachedir": str(tmp_path / "cache"), "pki_dir": str(tmp_path / "pki"), "id": "master"}
    os.makedirs(os.path.join(opts["pki_dir"], "minions"))
    monkeypatch.setattr(lease_runner, "__opts__", opts, raising=False)
    rollouts = store.RolloutStore(os.path.join(opts["cachedir"], "expressware", "rollouts"))

    def save(driver_pid, status=rollout.RUNNING, gate=GATE):
        facts = {
            m: {
                "decision": {"action": "install", "reason": "test", "installed": "5.25.2"},
                "installed": "5.25.2",
                "node_state": {"active": True, "reasons": []},
                "grains": GRAINS,
                "workdir": "/var/cache/expressware",
            }
            for m in ("node1", "node2")
        }
        record = rollout.new_record(ROLLOUT, "default", "5.26.0", "salt://x.sh", facts, dict(OPTIONS), 100.0)
        record["driver"] = {"pid": driver_pid, "host": socket.gethostname(), "since": 100.0}
        rollout.mark_prepared(record, "node2", gate, 101.0)
        record["status"] = status
        rollouts.save(record)
        return record

    return opts, save


def test_a_prepared_job_of_a_running_rollout_is_wanted(master, driver_process):
    _, save = master
    save(driver_process.pid)
    assert lease_runner.gate_wanted(GATE, minion="node2") == {
        "gate": GATE,
        "minion": "node2",
        "wanted": True,
        "reason": None,
    }


def test_a_prepared_job_whose_driver_was_killed_is_not(master, driver_process):
    _, save = master
    save(driver_process.pid)
    driver_process.kill()
    driver_process.wait()
    answer = lease_runner.gate_wanted(GATE, minion="node2")
    assert answer["wanted"] is False
    assert answer["reason"] == f"the driver of rollout {ROLLOUT} is gone (rolling.resume prepares the node again)"


@pytest.mark.parametrize("status", [rollout.HALTED, rollout.PAUSED, rollout.ABORTED, rollout.DONE])
def test_a_prepared_job_of_a_stopped_rollout_is_not(master, driver_process, status):
    _, save = master
    save(driver_process.pid, status=status)
    answer = lease_runner.gate_wanted(GATE, minion="node2")
    assert answer["wanted"] is False and answer["reason"] == f"rollout {ROLLOUT} is {status}"


def test_a_job_at_another_gate_or_of_another_node_or_rollout_is_not(master, driver_process):
    _, save = master
    save(driver_process.pid, gate=f"{ROLLOUT}:00000000")  # the runner prepared another job since
    assert lease_runner.gate_wanted(GATE, minion="node2")["reason"] == (
        f"node2 is not prepared at gate {GATE} in rollout {ROLLOUT}"
    )
    assert lease_runner.gate_wanted(f"{ROLLOUT}:00000000", minion="node1")["wanted"] is False
    assert lease_runner.gate_wanted(f"{ROLLOUT}:00000000", minion="node9")["wanted"] is False
    answer = lease_runner.gate_wanted("20261127T000000-000000:00000000", minion="node2")
    assert answer["wanted"] is False and "no rollout" in answer["reason"]


def test_a_syndic_master_that_does_not_know_the_rollout_gives_no_answer(master, driver_process):
    """Under a master of masters the rollout's record is above: the syndic's master says neither yes nor no (the
    job waits on), while a plain master that does not know it says no."""
    opts, save = master
    save(driver_process.pid)
    unknown = "20261127T000000-000000:00000000"
    assert lease_runner.gate_wanted(unknown, minion="node2")["wanted"] is False
    opts["syndic_master"] = "mom.example.com"
    answer = lease_runner.gate_wanted(unknown, minion="node2")
    assert answer["wanted"] is None and "syndic" in answer["reason"]
    # A rollout it does know (a shared store) is answered as on any master.
    assert lease_runner.gate_wanted(GATE, minion="node2")["wanted"] is True


def test_a_minion_asks_only_for_itself(master, driver_process):
    opts, save = master
    save(driver_process.pid)
    # publish.runner from node1: the master's opts carry the caller's authenticated id.
    open(os.path.join(opts["pki_dir"], "minions", "node1"), "w").close()
    opts["id"] = "node1"
    answer = lease_runner.gate_wanted(GATE, minion="node2")
    assert answer["minion"] == "node1" and answer["wanted"] is False


@pytest.mark.parametrize(
    "gate",
    [
        None,
        5,
        "",
        GATE + "\n",
        "x",
        f"{ROLLOUT}:",
        f"{ROLLOUT}:ab;rm -rf /",
        "$(reboot):abcd",
        "`id`:abcd",
        "../x:abcd",
        f"{ROLLOUT}:--enforce",
        "a" * 100 + ":ab",
    ],
)
def test_bad_gates_are_refused(master, gate):
    answer = lease_runner.gate_wanted(gate, minion="node2")
    assert answer["status"] == "refused" and answer["retcode"] == 1
    assert answer["comment"].startswith("gate must be a rolling runner's gate (<rollout id>:<token>)")


def test_without_a_minion_it_is_refused(master):
    answer = lease_runner.gate_wanted(GATE)
    assert answer["status"] == "refused" and answer["comment"].startswith("minion must be given")
