"""Requests only from who may ask, on a real master (reactor configured) with three minions on simulated nodes.

A minion's own ``expressware/update/request`` event, in either form Salt lets it fire,
starts nothing; ``salt-run rolling.request`` on the master starts a rollout through the
reactor; a minion the master's ``expressware:reactor:allow`` names asks through
``publish.runner rolling.request`` and gets what its limits allow, nothing beyond; a
minion acts on the update lease only for itself. The simulator journals are the witness
that nodes were not touched.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

from expressware_sim import max_nodes_down
from tests.conftest import NEW, NEWER, changing_commands
from tests.integration.conftest import NODE_IDS, sia_url
from tests.integration.rollouts import (  # noqa: F401 (fixtures)
    data_nodes,
    no_leftover_lease,
    roots,
    update_args,
    wait_for,
)

REQUEST = "expressware/update/request"
REFUSED = "expressware/rolling/refused"


def _cache(master, *parts):
    return pathlib.Path(master.config["cachedir"], "expressware", *parts)


def _rollout_ids(master):
    directory = _cache(master, "rollouts")
    return sorted(p.name for p in directory.glob("*.json")) if directory.is_dir() else []


def _pending_requests(master):
    directory = _cache(master, "requests")
    return sorted(p.name for p in directory.glob("*.json")) if directory.is_dir() else []


def _refusals(event_listener, master, start):
    return [e.data for e in event_listener.get_events([(master.id, REFUSED)], after_time=start)]


def _wait_for_finish(event_listener, master, start, timeout=300):
    finished = event_listener.wait_for_events(
        [(master.id, "expressware/rolling/*/finish")], after_time=start, timeout=timeout
    )
    ended = [
        (e.tag, e.data)
        for e in event_listener.get_events(
            [(master.id, "expressware/rolling/*/halted"), (master.id, REFUSED)], after_time=start
        )
    ]
    assert finished.found_all_events, f"the requested rollout did not finish: {ended}"


def test_a_minions_own_request_event_changes_nothing(master, minions, salt_run_cli, nodes, event_listener):
    """Both forms a minion can fire: event.send (the master adds the minion's id) and the batched
    event.fire_master with preload (data the minion wrote: here no id, and a claimed 'master')."""
    before = {n: changing_commands(node) for n, node in nodes.items()}
    rollouts_before = _rollout_ids(master)
    start = time.time()
    call = minions[1].salt_call_cli(timeout=60)  # node2: not in the allow-list
    request = {"tgt": "*", "version": NEW, "sia": sia_url(NEW), "applications": ["ndbmtd"], "node_timeout": 60}
    made_up = dict(request, request="20261201T000000-0123456789abcdef")
    ret = call.run("event.send", REQUEST, f"data={json.dumps(made_up)}")
    assert ret.returncode == 0 and ret.data is True, ret
    batched = {
        "events": [
            {"tag": REQUEST, "data": request},
            {"tag": REQUEST, "data": dict(request, id="master", request="../../leases/default")},
        ]
    }
    ret = call.run("event.fire_master", json.dumps(request), REQUEST, f"preload={json.dumps(batched)}")
    assert ret.returncode == 0 and ret.data is True, ret

    wait_for(lambda: len(_refusals(event_listener, master, start)) >= 3, 60, "three refusals")
    refusals = sorted(_refusals(event_listener, master, start), key=lambda r: str(r.get("requester")))
    assert [(r["requester"], r["verified"]) for r in refusals] == [(None, False), ("master", False), ("node2", False)]
    assert "node2 (claimed, unverified)" in refusals[2]["reason"] and "carries no request id" in refusals[2]["reason"]
    assert "master (claimed, unverified)" in refusals[1]["reason"] and "is not a request id" in refusals[1]["reason"]
    assert "unknown (the event names no id)" in refusals[0]["reason"]
    time.sleep(2)  # nothing follows the refusals
    assert not event_listener.get_events([(master.id, "expressware/rolling/*/start")], after_time=start)
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["held"] is False
    assert _rollout_ids(master) == rollouts_before and _pending_requests(master) == []
    assert {n: changing_commands(node) for n, node in nodes.items()} == before


def test_salt_run_rolling_request_runs_the_rollout_and_a_replayed_id_does_nothing(
    master, minions, salt_run_cli, nodes, event_listener
):
    start = time.time()
    # The real command line, as an operator types it.
    salt_run = pathlib.Path(sys.executable).parent / "salt-run"
    cmdline = [str(salt_run), f"--config-dir={master.config_dir}", "--out=json", "rolling.request", *update_args()]
    proc = subprocess.run(
        cmdline, capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ, PYTHONWARNINGS="ignore")
    )
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["status"] == "requested" and answer["requester"] == "master", answer
    assert time.time() - start < 60  # it returns at once, the rollout runs in the reactor
    request_id = answer["request"]

    _wait_for_finish(event_listener, master, start)
    assert all(nodes[n].state()["running_version"] == NEW for n in NODE_IDS)
    assert max_nodes_down(roots(nodes)) == 1
    status = salt_run_cli.run("rolling.status", "cluster=default")
    assert status.data["status"] == "done" and status.data["lease"]["held"] is False
    (request_event,) = event_listener.get_events([(master.id, REQUEST)], after_time=start)
    assert set(request_event.data) - {"_stamp"} == {"request"}  # the id alone on the bus

    # The same id again (replayed by a minion in a batched event): taken already, nothing happens.
    before = {n: changing_commands(node) for n, node in nodes.items()}
    replay = time.time()
    call = minions[2].salt_call_cli(timeout=60)
    batched = {"events": [{"tag": REQUEST, "data": {"request": request_id}}]}
    assert call.run("event.fire_master", "{}", REQUEST, f"preload={json.dumps(batched)}").data is True
    wait_for(lambda: _refusals(event_listener, master, replay), 60, "the replay's refusal")
    (refusal,) = _refusals(event_listener, master, replay)
    assert "already taken" in refusal["reason"] and refusal["request"] == request_id
    assert not event_listener.get_events([(master.id, "expressware/rolling/*/start")], after_time=replay)
    assert {n: changing_commands(node) for n, node in nodes.items()} == before


def _publish_request(call, *args):
    ret = call.run("publish.runner", "rolling.request", f"arg={json.dumps(list(args))}", "timeout=30")
    assert ret.returncode == 0, ret
    return ret.data


def test_an_allowed_minion_gets_a_rollout_within_its_limits_and_nothing_beyond(
    master, minions, salt_run_cli, nodes, event_listener
):
    call = minions[0].salt_call_cli(timeout=90)  # node1: allowed node*, version NEW, applications ndbmtd
    start = time.time()
    before = {n: changing_commands(node) for n, node in nodes.items()}
    for beyond, reason in [
        (("tgt=*", f"version={NEW}"), "target '*' (glob) is not among the allowed targets"),
        (("tgt=node1,node2,node3", "tgt_type=list", f"version={NEWER}"), f"version {NEWER} is not among"),
        (("tgt=node2", f"version={NEW}", "reboot=True"), "reboot is not among the allowed options"),
        (("tgt=node2", f"version={NEW}", "sia=salt://expressware/other.sh"), "'sia' is not among the allowed"),
        (("tgt=node2", f"version={NEW}", "applications=[sshd]"), "application(s) sshd not among"),
        (("tgt=node2", f"version={NEW}", "cluster=db1"), "cluster db1 is not among the allowed clusters"),
    ]:
        answer = _publish_request(call, *beyond)
        assert answer["status"] == "refused" and reason in answer["comment"], (beyond, answer)
        assert answer["requester"] == "node1"
    wait_for(lambda: len(_refusals(event_listener, master, start)) >= 6, 60, "six refusals on the bus")
    refusals = _refusals(event_listener, master, start)
    assert len(refusals) == 6 and all(r["requester"] == "node1" and r["verified"] is True for r in refusals)
    # A minion the allow-list does not name is refused whatever it asks.
    other = _publish_request(minions[1].salt_call_cli(timeout=90), "tgt=node2", f"version={NEW}")
    assert other["status"] == "refused" and "node2 may not request updates" in other["comment"]
    time.sleep(1)
    assert _pending_requests(master) == [] and {n: changing_commands(node) for n, node in nodes.items()} == before
    assert not event_listener.get_events([(master.id, "expressware/rolling/*/start")], after_time=start)

    # Within its limits: node2 and node3 by id, the default installer, ndbmtd.
    start = time.time()
    answer = _publish_request(
        call, "tgt=node2,node3", "tgt_type=list", f"version={NEW}", "applications=[ndbmtd]", "node_timeout=60"
    )
    assert answer["status"] == "requested" and answer["requester"] == "node1", answer
    _wait_for_finish(event_listener, master, start)
    assert [nodes[n].state()["running_version"] for n in NODE_IDS] == ["5.25.2", NEW, NEW]
    assert changing_commands(nodes["node1"]) == []  # outside the request: untouched
    status = salt_run_cli.run("rolling.status", "cluster=default")
    assert status.data["status"] == "done" and sorted(status.data["nodes"]) == ["node2", "node3"]


def test_a_minion_acts_on_the_lease_only_for_itself(master, minions, salt_run_cli):
    assert salt_run_cli.run("expressware_lease.acquire", "cluster=default", "holder=maintenance").data["granted"]
    call = minions[0].salt_call_cli(timeout=60)

    def peer(fun, *args):
        ret = call.run("publish.runner", f"expressware_lease.{fun}", f"arg={json.dumps(list(args))}", "timeout=30")
        assert ret.returncode == 0, ret
        return ret.data

    released = peer("release", "cluster=default", "holder=maintenance")
    assert released["released"] is False and "held by maintenance, not node1" in released["comment"]
    assert peer("acquire", "cluster=default", "holder=maintenance")["granted"] is False  # not under its name
    taken = peer("acquire", "cluster=other", "holder=node2")
    assert taken["granted"] is True and taken["holder"] == "node1"  # its own id, whatever name it gave
    assert peer("show")["status"] == "refused"  # not the list of every cluster
    assert peer("show", "cluster=default")["holder"] == "maintenance"
    assert salt_run_cli.run("expressware_lease.show", "cluster=default").data["holder"] == "maintenance"
    assert peer("release", "cluster=other")["released"] is True
    assert salt_run_cli.run("expressware_lease.release", "cluster=default").data["released"] is True
