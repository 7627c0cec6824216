"""The rollout logic (plan, next step, record) as plain data, without daemons."""

import json

import pytest

from tests.shared_code import load

rollout = load("expressware_rollout")
store = load("expressware_store")

GRAINS_A = {"cpuarch": "x86_64", "os": "Rocky", "osrelease": "9.3", "kernelrelease": "5.14.0-362.el9.x86_64"}
GRAINS_B = dict(GRAINS_A, kernelrelease="5.14.0-427.el9.x86_64")
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


def fact(action="install", active=True, installed="5.25.2", grains=GRAINS_A, **extra):
    result = {
        "decision": {"action": action, "reason": "test", "installed": installed},
        "node_state": {"active": active, "reasons": [] if active else ["services not running: IRM"]},
        "installed": installed,
        "grains": grains,
        "workdir": "/var/cache/expressware",
    }
    result.update(extra)
    return result


def plan(facts, now=100.0, **options):
    return rollout.new_record("r1", "default", "5.26.0", "salt://x.sh", facts, dict(OPTIONS, **options), now)


def drive(record, outcomes=None, now=100.0):
    """Run the record to its end the way the runner does; return the actions taken."""
    outcomes = outcomes or {}
    taken = []
    while True:
        action = rollout.next_action(record)
        if action is None:
            return taken
        taken.append(action)
        now += 1
        kind = action[0]
        if kind == "build":
            rollout.mark_built(record, action[1], ["Dolphin-PX-5.26.0-1.x86_64.rpm"], now)
        elif kind == "stage":
            rollout.mark_staged(record, action[1], now)
        elif kind == "update":
            minion = action[1]
            rollout.mark_phase(record, minion, rollout.STOPPING, now)
            # What the runner does while the node is down (background_action).
            while (work := rollout.background_action(record)) is not None:
                taken.append(work)
                rollout.mark_staged(record, work[1], now)
            rollout.mark_phase(record, minion, rollout.INSTALLING, now)
            if outcomes.get(minion) == "fail":
                rollout.mark_failed(record, minion, "not active within 60 s", now)
            else:
                rollout.mark_active(record, minion, "5.26.0", now)
        elif kind == "pause":
            rollout.pause(record, action[1], now)
        elif kind == "frontend":
            rollout.mark_frontend(record, True, now)
        elif kind == "finish":
            rollout.finish(record, now)


def test_preflight_target_matching_nothing():
    assert rollout.preflight_problems(set(), {}, "5.26.0") == [(None, "the target matched no minion")]


def test_preflight_reports_every_problem_by_minion():
    facts = {
        "n1": fact(),
        "n2": False,  # did not answer
        "n3": fact(active=False),
        "n4": fact(action="refuse", **{"decision": {"action": "refuse", "reason": "downgrade needs enforce=True"}}),
        "n5": fact(sia_error="installer salt://x.sh was not found on the master's file server"),
        "n6": "ERROR executing 'expressware.preflight'",
        "n7": fact(action="none", installed="5.26.0", active=False),
    }
    problems = dict(rollout.preflight_problems(set(facts), facts, "5.26.0"))
    assert set(problems) == {"n2", "n3", "n4", "n5", "n6", "n7"}
    assert problems["n2"] == "did not answer"
    assert "not active" in problems["n3"] and "IRM" in problems["n3"]
    assert "enforce=True" in problems["n4"]
    assert "not found" in problems["n5"]
    assert "ERROR" in problems["n6"]


def test_plan_skips_nodes_on_target_and_groups_builds():
    facts = {"n1": fact(), "n2": fact(), "n3": fact(grains=GRAINS_B), "n4": fact(action="none", installed="5.26.0")}
    record = plan(facts)
    assert record["order"] == ["n1", "n2", "n3"]
    assert record["nodes"]["n4"]["phase"] == rollout.SKIPPED
    assert sorted(g["builder"] for g in record["groups"].values()) == ["n1", "n3"]
    actions = drive(record)
    # Both groups are staged while the first node (a builder) is down, not before it.
    assert [a[0] for a in actions] == ["build", "build", "update", "stage", "stage", "update", "update", "finish"]
    assert [a[1] for a in actions if a[0] == "update"] == ["n1", "n2", "n3"]
    assert record["status"] == rollout.DONE
    assert all(record["nodes"][m]["after"] == "5.26.0" for m in facts)
    json.dumps(record)  # the record is plain JSON


def test_order_and_sort():
    facts = {name: fact() for name in ("a", "b", "c", "d")}
    assert plan(facts, order=None)["order"] == ["a", "b", "c", "d"]
    assert rollout.order_nodes(facts, ["c"], "reverse") == ["c", "d", "b", "a"]
    with pytest.raises(rollout.RolloutError, match="not targeted"):
        rollout.order_nodes(facts, ["zz"])
    with pytest.raises(rollout.RolloutError, match="twice"):
        rollout.order_nodes(facts, ["a", "a"])


def test_failure_halts_and_touches_no_further_node():
    record = plan({name: fact() for name in ("n1", "n2", "n3")})
    actions = drive(record, {"n2": "fail"})
    assert [a for a in actions if a[0] == "update"] == [("update", "n1"), ("update", "n2")]
    assert record["status"] == rollout.HALTED and "n2 failed" in record["reason"]
    assert rollout.next_action(record) is None
    assert record["nodes"]["n3"]["phase"] == rollout.STAGED


def test_resume_retries_the_failed_node_and_never_redoes_finished_ones():
    record = plan({name: fact() for name in ("n1", "n2", "n3")})
    drive(record, {"n2": "fail"})
    rollout.resume(record, 200.0)
    actions = drive(record, now=200.0)
    assert [a for a in actions if a[0] == "update"] == [("update", "n2"), ("update", "n3")]
    assert record["nodes"]["n2"]["attempts"] == 2 and record["nodes"]["n1"]["attempts"] == 1
    assert record["status"] == rollout.DONE


def test_resume_with_skip():
    record = plan({name: fact() for name in ("n1", "n2", "n3")})
    drive(record, {"n2": "fail"})
    rollout.resume(record, 200.0, skip=["n2"])
    drive(record, now=200.0)
    assert record["nodes"]["n2"]["phase"] == rollout.SKIPPED and record["nodes"]["n3"]["phase"] == rollout.ACTIVE
    with pytest.raises(rollout.RolloutError, match="already done"):
        rollout.resume(record, 300.0)


def test_skip_of_unknown_or_finished_node_is_refused():
    record = plan({name: fact() for name in ("n1", "n2")})
    drive(record, {"n2": "fail"})
    with pytest.raises(rollout.RolloutError, match="not in rollout"):
        rollout.resume(record, 200.0, skip=["n9"])
    with pytest.raises(rollout.RolloutError, match="already updated"):
        rollout.resume(record, 200.0, skip=["n1"])


def test_interrupted_node_is_continued_first_after_a_restart():
    record = plan({name: fact() for name in ("n1", "n2", "n3")})
    rollout.mark_built(record, next(iter(record["groups"])), [], 1)
    rollout.mark_staged(record, next(iter(record["groups"])), 2)
    rollout.mark_phase(record, "n1", rollout.STOPPING, 3)
    rollout.mark_active(record, "n1", "5.26.0", 4)
    rollout.mark_phase(record, "n2", rollout.INSTALLING, 5)
    saved = json.loads(json.dumps(record))  # what a master restart leaves on disk
    assert rollout.in_flight(saved) == ["n2"]
    assert rollout.next_action(saved) == ("update", "n2")


def test_canary_pauses_then_resume_releases():
    record = plan({name: fact() for name in ("n1", "n2", "n3")}, canary=1)
    actions = drive(record)
    assert actions[-1][0] == "pause" and record["status"] == rollout.PAUSED
    assert [a[1] for a in actions if a[0] == "update"] == ["n1"]
    rollout.resume(record, 300.0)
    drive(record, now=300.0)
    assert record["status"] == rollout.DONE


def test_frontend_after_all_nodes():
    record = plan({"n1": fact()}, frontend="fe")
    actions = drive(record)
    assert [a[0] for a in actions] == ["build", "update", "stage", "frontend", "finish"]


def test_no_build_option_lets_each_node_build():
    record = plan({"n1": fact(), "n2": fact()}, build=False)
    assert [a[0] for a in drive(record)] == ["update", "update", "finish"]


def test_summary_is_flat_and_stable():
    record = plan({"n1": fact(), "n2": fact(action="none", installed="5.26.0")})
    drive(record)
    result = rollout.summary(record)
    assert result["status"] == "done" and result["counts"] == {"active": 1, "skipped": 1}
    assert result["nodes"]["n1"]["before"] == "5.25.2" and result["nodes"]["n1"]["after"] == "5.26.0"


def test_record_log_is_bounded():
    record = plan({"n1": fact()})
    for i in range(1000):
        rollout.log(record, i, "x")
    assert len(record["log"]) == rollout.MAX_LOG


class TestStores:
    def test_lease_one_holder_no_expiry(self, tmp_path):
        clock = [1000.0]
        leases = store.LeaseStore(str(tmp_path), clock=lambda: clock[0])
        assert leases.acquire("db1", "node1")["granted"] is True
        assert leases.acquire("db1", "node1")["granted"] is True  # re-entrant for its holder
        clock[0] += 86400 * 30
        denied = leases.acquire("db1", "node2")
        assert denied["granted"] is False and denied["holder"] == "node1" and denied["age"] == 86400 * 30
        assert leases.release("db1", holder="node2")["released"] is False
        assert leases.release("db1")["released"] is True
        assert leases.acquire("db1", "node2")["granted"] is True
        assert leases.acquire("db2", "node1")["granted"] is True  # clusters are independent

    def test_names_are_checked(self, tmp_path):
        leases = store.LeaseStore(str(tmp_path))
        for bad in ("../x", "", "a/b", "x" * 65, None, ".hidden"):
            with pytest.raises(ValueError):
                leases.acquire(bad, "n1")

    def test_rollout_records_atomic_and_latest(self, tmp_path):
        rollouts = store.RolloutStore(str(tmp_path))
        first = plan({"n1": fact()}, now=1.0)
        second = dict(plan({"n1": fact()}, now=2.0), id="r2")
        rollouts.save(first)
        rollouts.save(second)
        assert rollouts.latest()["id"] == "r2"
        assert rollouts.load("r1") == json.loads(json.dumps(first))
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
        rollouts.request_abort("r1")
        assert rollouts.abort_requested("r1") and not rollouts.abort_requested("r2")
        rollouts.clear_abort("r1")
        assert not rollouts.abort_requested("r1")
        with pytest.raises(ValueError, match="no rollout"):
            rollouts.load("r9")

    def test_records_are_stored_compact_and_load_as_they_were(self, tmp_path):
        rollouts = store.RolloutStore(str(tmp_path))
        record = plan({"n1": fact(), "n2": fact()}, now=1800000000.25)
        record["args"] = {
            "tgt": "*",
            "version": record["version"],
            "sia": record["sia"],
            "cluster": "db1x",
            "options": dict(record["options"]),
        }
        rollout.mark_phase(record, "n1", rollout.STOPPING, 1800000012.3456789)
        rollouts.save(record)
        stored = json.loads((tmp_path / "r1.json").read_text())
        # The log: [seconds since created, to the ms, message]; no empty node fields; args without the
        # version and sia the record holds already (its cluster differs from the record's: kept).
        assert stored["stored"] == store.STORED_FORMAT and stored["log"][-1] == [12.096, "n1: stopping"]
        assert "error" not in stored["nodes"]["n1"] and "gate" not in stored["nodes"]["n2"]
        assert stored["nodes"]["n1"]["started"] == 1800000012.3456789
        assert stored["args"] == {"tgt": "*", "cluster": "db1x"}
        loaded = rollouts.load("r1")
        expected = json.loads(json.dumps(record))
        expected["log"][-1]["time"] = 1800000012.346  # to the millisecond
        assert loaded == expected

    def test_records_of_an_earlier_release_load_unchanged(self, tmp_path):
        record = plan({"n1": fact()}, now=5.0)
        record["args"] = {"tgt": "*", "version": record["version"], "sia": record["sia"]}
        (tmp_path / "r1.json").write_text(json.dumps(record))  # dict log entries, every field, full args
        (tmp_path / "r1.nodes").write_text(
            json.dumps(
                {
                    "node": "n1",
                    "entry": dict(record["nodes"]["n1"], phase="stopping"),
                    "status": "running",
                    "reason": None,
                    "updated": 6.0,
                    "log": [{"time": 6.0, "message": "n1: stopping"}],
                }
            )
            + "\n"
        )
        loaded = store.RolloutStore(str(tmp_path)).load("r1")
        assert loaded["nodes"]["n1"]["phase"] == "stopping" and loaded["log"][-1] == {
            "time": 6.0,
            "message": "n1: stopping",
        }
        assert loaded["args"] == record["args"] and loaded["log"][:-1] == record["log"]


class TestNodeJournal:
    def test_node_steps_append_and_load_replays_them(self, tmp_path):
        rollouts = store.RolloutStore(str(tmp_path))
        record = plan({name: fact() for name in ("n1", "n2")})
        rollouts.save(record)
        rollout.mark_phase(record, "n1", rollout.STOPPING, 1)
        rollouts.save_node(record, "n1")
        rollout.mark_failed(record, "n1", "not active within 60 s", 2)
        rollouts.save_node(record, "n1")
        snapshot = json.loads((tmp_path / "r1.json").read_text())
        assert snapshot["nodes"]["n1"]["phase"] == rollout.PENDING  # only the journal has the steps
        loaded = rollouts.load("r1")
        assert loaded["nodes"]["n1"]["phase"] == rollout.FAILED
        assert loaded["status"] == rollout.HALTED and "n1 failed" in loaded["reason"]
        assert loaded == json.loads(json.dumps(record))

    def test_a_group_built_and_staged_is_one_line_each_with_every_new_log_entry(self, tmp_path):
        rollouts = store.RolloutStore(str(tmp_path))
        record = plan({"n1": fact(), "n2": fact()})
        rollouts.save(record)
        snapshot = (tmp_path / "r1.json").read_text()
        key = record["nodes"]["n1"]["group"]
        rollout.log(record, 101.0, "building RPMs")  # the driver says it, then the core logs "built"
        rollout.mark_built(record, key, ["a.rpm"], 102.0)
        rollouts.save_changes(record, groups=(key,))
        rollout.mark_staged(record, key, 103.0)
        rollouts.save_changes(record, nodes=("n1", "n2"), groups=(key,))
        assert (tmp_path / "r1.json").read_text() == snapshot  # appended, not rewritten
        assert len((tmp_path / "r1.nodes").read_text().splitlines()) == 2
        loaded = rollouts.load("r1")
        assert loaded["groups"][key]["built"] and loaded["groups"][key]["staged"]
        assert loaded["nodes"]["n2"]["phase"] == rollout.STAGED
        assert [e["message"] for e in loaded["log"][-3:]] == [
            "building RPMs",
            "built 1 RPM(s) for " + key + " on n1",
            "staged the RPMs of " + key + " on 2 node(s)",
        ]
        assert loaded == json.loads(json.dumps(record))

    def test_a_save_that_changes_nothing_writes_nothing(self, tmp_path):
        rollouts = store.RolloutStore(str(tmp_path))
        record = plan({"n1": fact()})
        rollouts.save(record)
        written = (tmp_path / "r1.json").stat().st_ino
        record["updated"] += 5  # the driver's save stamps the time: alone, no reason to write (and fsync) again
        rollouts.save(record)
        assert (tmp_path / "r1.json").stat().st_ino == written
        store.RolloutStore(str(tmp_path)).save(dict(record, note="another process"))
        rollouts.save(record)  # the file is not the one it wrote: written again
        assert "note" not in json.loads((tmp_path / "r1.json").read_text())
        written = (tmp_path / "r1.json").stat().st_ino
        rollout.mark_phase(record, "n1", rollout.STOPPING, 106.0)
        rollouts.save_node(record, "n1")
        rollouts.save(record)  # the journal has a step since: the snapshot takes it in
        assert (tmp_path / "r1.json").stat().st_ino != written and not (tmp_path / "r1.nodes").exists()
        assert json.loads((tmp_path / "r1.json").read_text())["nodes"]["n1"]["phase"] == rollout.STOPPING

    def test_a_journal_compacted_by_another_store_is_opened_again(self, tmp_path):
        driver, other = store.RolloutStore(str(tmp_path)), store.RolloutStore(str(tmp_path))
        record = plan({"n1": fact(), "n2": fact()})
        driver.save(record)
        rollout.mark_phase(record, "n1", rollout.STOPPING, 101.0)
        driver.save_node(record, "n1")
        other.save(other.load("r1"))  # e.g. rolling.rollback marking the original: the journal goes
        rollout.mark_phase(record, "n1", rollout.INSTALLING, 102.0)
        driver.save_node(record, "n1")  # its open file was removed: a new one
        assert other.load("r1")["nodes"]["n1"]["phase"] == rollout.INSTALLING
        driver.close()

    def test_a_torn_last_line_is_ignored(self, tmp_path):
        rollouts = store.RolloutStore(str(tmp_path))
        record = plan({"n1": fact()})
        rollouts.save(record)
        rollout.mark_phase(record, "n1", rollout.STOPPING, 1)
        rollouts.save_node(record, "n1")
        with open(tmp_path / "r1.nodes", "a", encoding="utf-8") as handle:
            handle.write('{"node": "n1", "entry": {"phase": "act')  # the crash
        assert rollouts.load("r1")["nodes"]["n1"]["phase"] == rollout.STOPPING

    def test_compaction_keeps_everything(self, tmp_path):
        rollouts = store.RolloutStore(str(tmp_path))
        rollouts.COMPACT_EVERY = 3
        record = plan({f"n{i}": fact() for i in range(10)})
        rollouts.save(record)
        for i in range(10):
            rollout.mark_phase(record, f"n{i}", rollout.STOPPING, i)
            rollouts.save_node(record, f"n{i}")
        assert rollouts.load("r1") == json.loads(json.dumps(record))
        assert len((tmp_path / "r1.nodes").read_text().splitlines()) <= 3


@pytest.mark.parametrize("canary", [0, 1, 2, 5])
@pytest.mark.parametrize("frontend", [None, "fe"])
def test_upcoming_names_exactly_the_next_update(canary, frontend):
    """The node the runner prepares ahead of its turn is the one next_action then names;
    None whenever something other than an update comes next (pause, frontend, end)."""
    facts = {f"n{i}": fact() for i in range(1, 6)}
    facts["n0"] = fact(action="none", installed="5.26.0")  # skipped: never prepared
    record = plan(facts, canary=canary, frontend=frontend)
    first = rollout.upcoming(record)
    assert first == "n1"
    now, checked = 100.0, 0
    while True:
        action = rollout.next_action(record)
        if action is None:
            break
        now += 1
        if action[0] == "build":
            rollout.mark_built(record, action[1], ["Dolphin-PX-5.26.0-1.x86_64.rpm"], now)
        elif action[0] == "stage":
            rollout.mark_staged(record, action[1], now)
        elif action[0] == "update":
            minion = action[1]
            rollout.mark_phase(record, minion, rollout.STOPPING, now)
            while (work := rollout.background_action(record)) is not None:
                rollout.mark_staged(record, work[1], now)
            predicted = rollout.upcoming(record, current=minion)
            rollout.mark_active(record, minion, "5.26.0", now)
            following = rollout.next_action(record)
            assert (predicted is None) == (following[0] != "update"), (minion, predicted, following)
            if predicted is not None:
                assert following == ("update", predicted)
            checked += 1
        elif action[0] == "pause":
            assert rollout.upcoming(record) is None  # the pause comes first
            rollout.pause(record, action[1], now)
            assert rollout.upcoming(record) is None  # a paused rollout prepares nothing
            rollout.resume(record, now)
        elif action[0] == "frontend":
            rollout.mark_frontend(record, True, now)
        else:
            rollout.finish(record, now)
    assert checked == 5 and record["status"] == rollout.DONE


def test_only_a_builder_goes_before_its_group_is_staged():
    facts = {"n1": fact(), "n2": fact(), "n3": fact(grains=GRAINS_B)}
    record = plan(facts)
    while rollout.next_action(record)[0] == "build":
        rollout.mark_built(record, rollout.next_action(record)[1], ["Dolphin-PX-5.26.0-1.x86_64.rpm"], 101)
    group = record["nodes"]["n2"]["group"]
    assert record["groups"][group]["builder"] == "n1"
    assert rollout.next_action(record) == ("update", "n1")  # the builder has its RPMs: no staging first
    # n1 did not answer before its turn; the operator gives up on it. Its RPMs were
    # not staged (they reach the master with the staging): n2 builds them again.
    rollout.halt(record, "n1 did not answer", 102)
    rollout.resume(record, 103, skip=["n1"])
    assert rollout.next_action(record) == ("build", group)
    assert record["groups"][group]["builder"] == "n2"
    assert "built again on n2" in record["log"][-2]["message"]
    rollout.mark_built(record, group, ["Dolphin-PX-5.26.0-1.x86_64.rpm"], 104)
    assert rollout.next_action(record) == ("update", "n2")


def test_a_skipped_builder_whose_rpms_were_staged_is_not_rebuilt_for():
    facts = {"n1": fact(), "n2": fact()}
    record = plan(facts)
    (group,) = record["groups"]
    rollout.mark_built(record, group, ["Dolphin-PX-5.26.0-1.x86_64.rpm"], 101)
    rollout.mark_staged(record, group, 102)
    rollout.mark_phase(record, "n1", rollout.STOPPING, 103)
    rollout.mark_failed(record, "n1", "not active within 60 s", 104)
    rollout.resume(record, 105, skip=["n1"])
    assert record["groups"][group]["builder"] == "n1" and record["groups"][group]["built"]
    assert rollout.next_action(record) == ("update", "n2")


def test_staging_not_done_while_the_builder_is_in_flight_comes_before_the_next_node():
    facts = {"n1": fact(), "n2": fact(), "n3": fact(grains=GRAINS_B), "n4": fact(grains=GRAINS_B)}
    record = plan(facts)
    while rollout.next_action(record)[0] == "build":
        rollout.mark_built(record, rollout.next_action(record)[1], ["Dolphin-PX-5.26.0-1.x86_64.rpm"], 101)
    first, second = record["nodes"]["n1"]["group"], record["nodes"]["n3"]["group"]
    assert rollout.next_action(record) == ("update", "n1")
    rollout.mark_phase(record, "n1", rollout.STOPPING, 102)
    # While n1 is down its group's staging is tried once (its builder, n1, may be
    # rebooting and fail it); the other group's is tried too, not blocked behind it.
    assert rollout.background_action(record) == ("stage", first)
    assert rollout.background_action(record, tried=[("stage", first)]) == ("stage", second)
    rollout.mark_staged(record, second, 103)
    assert rollout.background_action(record, tried=[("stage", first)]) is None
    rollout.mark_active(record, "n1", "5.26.0", 104)
    # Not staged yet: it is done before n2 is touched.
    assert rollout.next_action(record) == ("stage", first)
    assert rollout.upcoming(record) == "n2"  # it gets ready meanwhile (its go waits for the staging)
    rollout.mark_staged(record, first, 105)
    assert rollout.next_action(record) == ("update", "n2")


def test_upcoming_after_a_failure_is_nothing_and_gates_are_kept_for_a_later_driver():
    record = plan({f"n{i}": fact() for i in range(1, 4)})
    for key in list(record["groups"]):
        rollout.mark_built(record, key, ["Dolphin-PX-5.26.0-1.x86_64.rpm"], 101)
        rollout.mark_staged(record, key, 102)
    rollout.mark_phase(record, "n1", rollout.STOPPING, 103)
    rollout.mark_prepared(record, "n2", "r1:abcd", 104)
    assert rollout.open_gates(record) == {"n2": "r1:abcd"}
    rollout.mark_failed(record, "n1", "not active within 60 s", 105)
    assert rollout.upcoming(record, current="n1") is None  # halted: nothing more is prepared
    # A new driver (resume) finds the gate it has to cancel; once n2 goes, it is closed.
    rollout.resume(record, 106)
    assert rollout.open_gates(record) == {"n2": "r1:abcd"}
    rollout.clear_gate(record, "n2")
    assert rollout.open_gates(record) == {}
    restored = json.loads(json.dumps(record))
    assert restored["nodes"]["n2"]["gate"] is None


def test_frontend_already_on_target_is_skipped():
    record = plan({"n1": fact()}, frontend="fe")
    assert record["frontend"]["phase"] == rollout.PENDING
    record = rollout.new_record(
        "r2",
        "default",
        "5.26.0",
        "salt://x.sh",
        {"n1": fact()},
        dict(OPTIONS, frontend="fe"),
        100.0,
        frontend_fact={"installed": "5.26.0", "decision": {"action": "none"}},
    )
    assert record["frontend"] == {
        "minion": "fe",
        "phase": rollout.SKIPPED,
        "error": None,
        "before": "5.26.0",
        "after": "5.26.0",
        "note": "already on the target",
    }
    assert [a[0] for a in drive(record)] == ["build", "update", "stage", "finish"]
