"""Rollback from the record (``_utils/expressware_rollback.py``) as plain data, without daemons: which nodes, in
what order, to which version, with which installer, what is refused; and the lease taken over from the original."""

import pytest

from tests.shared_code import load
from tests.unit.test_rollout import OPTIONS, fact

rollout = load("expressware_rollout")
rollback = load("expressware_rollback")
store = load("expressware_store")
preflight = load("expressware_driver_preflight")

OLD, NEW = "5.25.2", "5.26.0"
ARGS = {"tgt": "*", "tgt_type": "glob", "cluster_members": None, "health_wait": 300, "order": None, "sort": "name"}


def halted_canary():
    """node1 updated, node2 failed (halted), node3 untouched."""
    facts = {m: fact() for m in ("node1", "node2", "node3")}
    record = rollout.new_record(
        "r1", "default", NEW, "salt://expressware/Dolphin_eXpressWare-5.26.0.sh", facts, dict(OPTIONS), 100.0
    )
    record["args"] = dict(ARGS, version=NEW, options=record["options"])
    rollout.mark_phase(record, "node1", rollout.STOPPING, 101.0)
    rollout.mark_active(record, "node1", NEW, 110.0)
    rollout.mark_phase(record, "node2", rollout.STOPPING, 111.0)
    rollout.mark_failed(record, "node2", "not active within 8 s", 120.0, after=NEW)
    return record


def test_the_changed_nodes_go_back_most_recent_first():
    record = halted_canary()
    assert record["status"] == rollout.HALTED
    assert rollback.changed_nodes(record) == ["node2", "node1"]  # node3 (never started) is not touched
    args = rollback.rollback_args(record, driver_alive=False)
    assert args["tgt"] == args["order"] == ["node2", "node1"] and args["tgt_type"] == "list"
    assert args["version"] == OLD and args["rollback_of"] == "r1"
    assert args["sia"] == "salt://expressware/Dolphin_eXpressWare-5.25.2.sh"
    options = args["options"]
    # The downgrade from exactly the version the original installed; no enforce, no canary; the failed node may
    # be down at the pre-flight (it goes back first), the updated one may not.
    assert options["downgrade_from"] == NEW and options["enforce"] is False and options["canary"] == 0
    assert options["may_be_down"] == ["node2"]
    assert rollback.plan_view(record, args)["nodes"]["node2"] == {"phase": "failed", "now": NEW, "back_to": OLD}


def test_order_is_the_reverse_of_the_start_times_not_of_the_plan():
    facts = {m: fact() for m in ("a", "b", "c")}
    record = rollout.new_record("r2", "default", NEW, None, facts, dict(OPTIONS), 100.0, order=["c", "a", "b"])
    for minion, started in (("c", 1.0), ("a", 2.0), ("b", 3.0)):
        rollout.mark_phase(record, minion, rollout.STOPPING, started)
        rollout.mark_active(record, minion, NEW, started + 0.5)
    rollout.finish(record, 10.0)
    assert rollback.changed_nodes(record) == ["b", "a", "c"]
    # A node the rollout found on the target already, or made active on the version it had, is not touched.
    record["nodes"]["a"]["after"] = record["nodes"]["a"]["before"]
    assert rollback.changed_nodes(record) == ["b", "c"]


@pytest.mark.parametrize(
    "sia, expected",
    [
        ("salt://expressware/Dolphin_eXpressWare-5.26.0.sh", "salt://expressware/Dolphin_eXpressWare-5.25.2.sh"),
        ("salt://vendor/db1/DIS_install_5.26.0.sh", "salt://vendor/db1/DIS_install_5.25.2.sh"),
        ("/srv/sia/Dolphin_eXpressWare-5.26.0.sh", "/srv/sia/Dolphin_eXpressWare-5.25.2.sh"),
        # Not named after the version it installs: the formula's default place.
        ("salt://expressware/latest.sh", "salt://expressware/Dolphin_eXpressWare-5.25.2.sh"),
        ("salt://x/Dolphin_eXpressWare-5.26.1.sh", "salt://expressware/Dolphin_eXpressWare-5.25.2.sh"),
        (None, "salt://expressware/Dolphin_eXpressWare-5.25.2.sh"),
    ],
)
def test_the_old_installer_is_found_as_the_update_found_its_own(sia, expected):
    assert rollback.installer_for(sia, NEW, OLD) == expected


def test_a_given_installer_and_node_timeout_win():
    args = rollback.rollback_args(halted_canary(), False, sia="/srv/old.sh", node_timeout=30)
    assert args["sia"] == "/srv/old.sh" and args["options"]["node_timeout"] == 30


@pytest.mark.parametrize(
    "change, alive, message",
    [
        (lambda r: r.update(status=rollout.RUNNING), True, "is still running"),
        (lambda r: r.update(status=rollout.RUNNING), False, "rolling.resume or rolling.abort it first"),
        (lambda r: r.update(status=rollout.WAITING), True, "is still running"),
        (lambda r: r.update(status=rollout.REFUSED), False, "never started"),
        (lambda r: r.update(status=rollout.PREFLIGHT), False, "never started"),
        (lambda r: r.update(rolled_back_by="r9"), False, "already rolled back by r9"),
        (
            lambda r: [r["nodes"][m].update(phase=rollout.SKIPPED) for m in ("node1", "node2")],
            False,
            "changed no node",
        ),
        (lambda r: r["nodes"]["node1"].update(before="5.24.0"), False, "5.24.0: node1; 5.25.2: node2"),
        (lambda r: r["nodes"]["node2"].update(before=None), False, "no version on record"),
    ],
)
def test_refused_with_a_reason(change, alive, message):
    record = halted_canary()
    change(record)
    with pytest.raises(rollback.RollbackError, match=message):
        rollback.rollback_args(record, alive)


def test_a_finished_and_a_paused_rollout_can_be_rolled_back():
    record = halted_canary()
    record["nodes"]["node2"]["phase"] = rollout.PENDING
    rollout.pause(record, "canary", 130.0)
    assert rollback.rollback_args(record, False)["order"] == ["node1"]
    rollout.finish(record, 140.0)
    assert rollback.rollback_args(record, False)["options"]["may_be_down"] == []


def test_link_both_ways_and_the_original_cannot_be_resumed():
    record = halted_canary()
    rollback.link(record, "r2", 200.0)
    assert record["rolled_back_by"] == "r2" and "rolled back by r2" in record["log"][-1]["message"]
    with pytest.raises(rollout.RolloutError, match="rolled back by r2"):
        rollout.check_resumable(record)
    with pytest.raises(rollback.RollbackError, match="already rolled back"):
        rollback.check(record, False)
    assert rollout.summary(record)["rolled_back_by"] == "r2"


def test_the_failed_node_may_be_down_at_the_preflight_and_no_other():
    facts = {"node1": fact(), "node2": fact(active=False)}
    assert rollout.preflight_problems(set(facts), facts, OLD, may_be_down=["node2"]) == []
    facts["node1"] = fact(active=False)
    assert [m for m, _ in rollout.preflight_problems(set(facts), facts, OLD, may_be_down=["node2"])] == ["node1"]
    # Down with nothing to do (it would be skipped, down): a problem too.
    facts = {"node1": fact(), "node2": fact(action="none", active=False)}
    assert [m for m, _ in rollout.preflight_problems(set(facts), facts, OLD, may_be_down=["node2"])] == ["node2"]


def test_the_lease_is_taken_over_only_from_the_original(tmp_path):
    leases = store.LeaseStore(str(tmp_path))
    leases.acquire("db1", "rolling:r1")
    assert leases.take_over("db1", "rolling:r2", "rolling:r0")["granted"] is False
    assert leases.get("db1")["holder"] == "rolling:r1"
    taken = leases.take_over("db1", "rolling:r2", "rolling:r1")
    assert taken["granted"] and taken["taken_from"] == "rolling:r1" and leases.get("db1")["holder"] == "rolling:r2"
    # Handed back (the rollback's pre-flight refused).
    assert leases.take_over("db1", "rolling:r1", "rolling:r2")["granted"]
    assert leases.get("db1")["holder"] == "rolling:r1"
    # A free lease is taken like acquire does (a finished original), and nothing is taken from anyone.
    leases.release("db1")
    taken = leases.take_over("db1", "rolling:r2", "rolling:r1")
    assert taken["granted"] and taken["taken_from"] is None
