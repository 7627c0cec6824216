"""A rollout that holds its cluster's lease has a record that says so, from the moment it takes the lease:
``rolling.status`` after a hung or killed ``salt-run`` shows who holds the lease and why; a refused pre-flight
leaves the record refused and releases the lease."""

import random

from tests.shared_code import load
from tests.unit import simulation

runner = load("rolling", "_runners")
plan_lib, store, driver_lib = runner.plan_lib, runner.store, runner.driver_lib

ARGS = dict(simulation.ARGS)


def test_the_record_is_written_before_the_preflight_and_says_refused_after():
    cluster = simulation.Cluster(random.Random(0), ["node1", "node2"], faults=False)
    records, leases = simulation.Records(cluster), simulation.Leases()
    salt = simulation.FakeSalt(cluster)
    records.salt = salt
    seen = {}

    def call(tgt, fun, arg=(), kwarg=None, tgt_type="list", timeout=None):
        # What an operator sees while the pre-flight runs (or hangs): the record and the lease.
        seen.update(record=records.load("r1"), lease=dict(leases.holders))
        return {"node1": False, "node2": False}  # nobody answers

    salt.call = call
    driver = driver_lib.Driver(salt, records, leases, dict(ARGS), staging=None, identity={"pid": 4242, "host": "m"})
    result = driver.start("r1")
    assert seen["record"]["status"] == plan_lib.PREFLIGHT and seen["record"]["driver"]["pid"] == 4242
    assert seen["lease"] == {"default": "rolling:r1"}
    assert result["status"] == "refused" and result["problems"] == {
        "node1": "did not answer",
        "node2": "did not answer",
    }
    record = records.load("r1")
    assert record["status"] == plan_lib.REFUSED and record["reason"] == "pre-flight failed; nothing was touched"
    assert record["problems"] == result["problems"]
    assert leases.holders == {}  # released


def _runner_on(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "__opts__", {"cachedir": str(tmp_path)}, raising=False)
    monkeypatch.setattr(runner.runner_lib.Master, "fire", lambda self, tag, data: None)
    rollouts, leases = store.rollout_store({"cachedir": str(tmp_path)}), store.lease_store({"cachedir": str(tmp_path)})
    return rollouts, leases


def _preflight(rollouts, leases, rollout_id, created, pid=2**22 + 12345):
    record = plan_lib.preflight_record(rollout_id, "default", "5.26.0", "salt://x.sh", ARGS["options"], created)
    record["driver"] = {"pid": pid, "host": "elsewhere", "since": created}
    record["args"] = {k: v for k, v in ARGS.items() if k != "timeout"}
    rollouts.save(record)
    leases.acquire("default", driver_lib.holder(rollout_id), purpose="rolling update to 5.26.0")
    return record


def test_status_shows_the_holder_of_a_driver_killed_in_its_preflight_and_abort_frees_it(tmp_path, monkeypatch):
    rollouts, leases = _runner_on(tmp_path, monkeypatch)
    _preflight(rollouts, leases, "r1", 100.0)
    status = runner.status()
    assert status["rollout"] == "r1" and status["status"] == "preflight"
    assert status["lease"]["holder"] == "rolling:r1" and status["driver"]["alive"] is False
    assert "died in its pre-flight" in status["comment"] and "rolling.abort" in status["comment"]
    resumed = runner.resume()
    assert resumed["status"] == "refused" and "never started" in resumed["comment"]
    assert runner.abort()["status"] == "aborted"
    assert leases.get("default")["held"] is False


def test_status_skips_a_refused_rollout(tmp_path, monkeypatch):
    rollouts, leases = _runner_on(tmp_path, monkeypatch)
    done = plan_lib.preflight_record("r1", "default", "5.26.0", "salt://x.sh", ARGS["options"], 100.0)
    done["status"] = plan_lib.DONE
    rollouts.save(done)
    refused = _preflight(rollouts, leases, "r2", 200.0)
    plan_lib.refuse(refused, "pre-flight failed; nothing was touched", 201.0, problems={"node3": "did not answer"})
    rollouts.save(refused)
    assert runner.status()["rollout"] == "r1"  # what the cluster last went through, not a refusal
    assert runner.status(rollout="r2")["problems"] == {"node3": "did not answer"}
    assert runner.abort(rollout="r2")["status"] == "refused"
