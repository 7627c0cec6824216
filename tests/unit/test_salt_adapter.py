"""The runner's door to Salt (``expressware_salt.SaltAdapter``) with a stand-in LocalClient and bus: no call
blocks beyond its bound, a silent minion is no answer, nothing read meanwhile is lost, one failure policy."""

import time

import pytest

from tests.shared_code import load

runner = load("rolling", "_runners")
saltio = runner.driver_lib.saltio


class Client:
    """``run_job`` publishes: the answers come on the bus (``Bus``) at once, from the minions in ``answering``."""

    def __init__(self, bus, minions, answering, fail=None):
        self.bus, self.minions, self.answering, self.fail = bus, minions, answering, fail
        self.jobs = []

    def run_job(self, tgt, fun, arg=(), kwarg=None, tgt_type="glob", listen=False):
        if self.fail:
            raise self.fail
        assert listen is False  # returns are collected from the runner's own listener
        jid = f"2026120100000000{len(self.jobs):04d}"
        self.jobs.append((tgt, fun, arg, kwarg, tgt_type))
        targeted = self.minions if tgt_type == "glob" else list(tgt)
        if not targeted:
            return {}
        for minion in targeted:
            if minion in self.answering:
                self.bus.events.append(
                    {"tag": f"salt/job/{jid}/ret/{minion}", "data": {"id": minion, "return": self.answering[minion]}}
                )
        return {"jid": jid, "minions": targeted}


class Bus:
    """The master event listener: the queued events, then nothing (each empty read takes its ``wait``)."""

    def __init__(self, *events):
        self.events = list(events)
        self.waited = 0.0
        self.fired = []

    def get_event(self, wait=5, full=False, auto_reconnect=False):
        assert full
        if self.events:
            return self.events.pop(0)
        time.sleep(min(wait, 0.05))
        self.waited += wait
        return None

    def fire_event(self, data, tag):
        self.fired.append((tag, data))


def adapter(minions=("node1", "node2"), answering=None, events=(), fail=None):
    bus = Bus(*events)
    client = Client(bus, list(minions), answering or {}, fail)
    return saltio.SaltAdapter({}, default_timeout=60, client=client, listener=bus), client, bus


def test_a_call_returns_as_soon_as_every_targeted_minion_answered():
    salt, client, bus = adapter(answering={"node1": True, "node2": True})
    started = time.monotonic()
    assert salt.call("*", "test.ping", tgt_type="glob", timeout=30) == {"node1": True, "node2": True}
    assert time.monotonic() - started < 5 and bus.waited == 0


def test_a_silent_minion_is_no_answer_once_the_bound_passed(caplog):
    salt, _, _ = adapter(answering={"node1": {"x": 1}})
    started = time.monotonic()
    assert salt.call(["node1", "node2"], "expressware.preflight", timeout=0.3) == {"node1": {"x": 1}, "node2": False}
    assert time.monotonic() - started < 5  # bounded: Salt's own wait is not involved
    assert "expressware.preflight (job " in caplog.text and "): no answer within " in caplog.text
    assert caplog.text.rstrip().endswith("from node2")


def test_events_read_while_collecting_returns_are_kept_in_order():
    phase = {"tag": "expressware/node/phase", "data": {"id": "node1", "data": {"phase": "waiting"}}}
    active = {"tag": "expressware/node/active", "data": {"id": "node1", "data": {}}}
    salt, _, _ = adapter(answering={"node2": True}, events=[phase, active])
    assert salt.call(["node2"], "test.ping", timeout=5) == {"node2": True}
    assert salt.get_event(0.1) == ("expressware/node/phase", phase["data"])
    assert salt.get_event(0.1) == ("expressware/node/active", active["data"])
    assert salt.get_event(0.1) is None


def test_a_return_of_another_job_or_minion_is_not_taken_for_the_answer():
    other = {"tag": "salt/job/99999999999999999999/ret/node2", "data": {"id": "node2", "return": "other job"}}
    salt, _, _ = adapter(events=[other])
    assert salt.call(["node2"], "test.ping", timeout=0.2) == {"node2": False}
    assert salt.get_event(0.1)[0] == other["tag"]


def test_no_minion_matched_is_an_empty_answer():
    salt, _, _ = adapter(minions=())
    assert salt.call("nothing*", "test.ping", tgt_type="glob") == {}


def test_salt_failing_is_lost_master_for_calls_and_publishes():
    salt, _, _ = adapter(fail=RuntimeError("The salt master could not be contacted"))
    with pytest.raises(saltio.LostMaster, match="test.ping could not be published: The salt master could not"):
        salt.call(["node1"], "test.ping")
    with pytest.raises(saltio.LostMaster):
        salt.publish(["node1"], "state.single", ["expressware.installed", "5.26.0"])
    # An unacknowledged event for a minion is a courtesy: never an error.
    assert salt.fire_on_minion("node1", "expressware/gate/cancel", {"gates": []}, acknowledged=False) is False


def test_publish_returns_the_jid_at_once():
    salt, client, bus = adapter()
    assert salt.publish(["node1"], "state.single", ["expressware.installed", "5.26.0"], kwarg={"queue": True})
    assert client.jobs == [(["node1"], "state.single", ["expressware.installed", "5.26.0"], {"queue": True}, "list")]
    assert bus.waited == 0


def test_a_driver_call_that_hit_its_bound_is_a_clear_error():
    salt, _, _ = adapter()
    driver = runner.driver_lib.Driver(salt, rollouts=None, leases=None, args={"timeout": 0.2}, staging=None)
    with pytest.raises(RuntimeError, match=r"^node1 did not answer expressware.node_state within 0.2 s$"):
        driver.call_one("node1", "expressware.node_state")
    assert driver.node_state("node1")["reasons"] == ["node1 did not answer expressware.node_state within 0.2 s"]


class SlowClient(Client):
    """node2 answers its job only after a ``saltutil.find_job`` said it still runs it (``running``: it says so)."""

    def __init__(self, bus, running=True):
        super().__init__(bus, ["node1", "node2"], {"node1": True})
        self.running = running
        self.first = None

    def run_job(self, tgt, fun, arg=(), kwarg=None, tgt_type="glob", listen=False):
        if fun != "saltutil.find_job":
            pub = super().run_job(tgt, fun, arg, kwarg, tgt_type, listen)
            self.first = pub["jid"]
            return pub
        jid = f"2026120100000000{len(self.jobs):04d}"
        self.jobs.append((tgt, fun, arg, kwarg, tgt_type))
        found = {"jid": arg[0], "fun": "test.ping"} if self.running else {}
        self.bus.events.append({"tag": f"salt/job/{jid}/ret/node2", "data": {"id": "node2", "return": found}})
        if self.running:
            self.bus.events.append({"tag": f"salt/job/{self.first}/ret/node2", "data": {"id": "node2", "return": 7}})
        return {"jid": jid, "minions": list(tgt)}


def test_a_minion_still_running_the_job_is_waited_for_like_salt_does():
    bus = Bus()
    client = SlowClient(bus)
    salt = saltio.SaltAdapter({}, client=client, listener=bus)
    assert salt.call(["node1", "node2"], "test.ping", timeout=0.2) == {"node1": True, "node2": 7}
    assert [job[1] for job in client.jobs] == ["test.ping", "saltutil.find_job"]
    assert client.jobs[1][0] == ["node2"]  # only the silent one is asked


def test_a_minion_not_running_the_job_any_more_is_no_answer():
    bus = Bus()
    client = SlowClient(bus, running=False)
    salt = saltio.SaltAdapter({}, client=client, listener=bus)
    assert salt.call(["node1", "node2"], "test.ping", timeout=0.2) == {"node1": True, "node2": False}


def test_the_wait_for_a_running_job_has_a_hard_bound(monkeypatch):
    class Forever(SlowClient):
        def run_job(self, tgt, fun, arg=(), kwarg=None, tgt_type="glob", listen=False):
            pub = super().run_job(tgt, fun, arg, kwarg, tgt_type, listen)
            if fun == "saltutil.find_job":
                self.bus.events.pop()  # "still running", and never a return
            return pub

    bus = Bus()
    salt = saltio.SaltAdapter({}, client=Forever(bus), listener=bus)
    started = time.monotonic()
    assert salt.call(["node1", "node2"], "test.ping", timeout=0.3) == {"node1": True, "node2": False}
    assert time.monotonic() - started <= saltio.SaltAdapter.PATIENCE * 0.3 + 2


class MasterOfMasters(Client):
    """``run_job`` on a master of masters (``order_masters``): it knows none of the minions below its syndic, so its
    answer names none; ``told``: the syndic forwards which of its minions the job reached (Salt 3006 drops that)."""

    def __init__(self, bus, minions, answering, told):
        super().__init__(bus, minions, answering)
        self.told = told

    def run_job(self, tgt, fun, arg=(), kwarg=None, tgt_type="glob", listen=False):
        pub = super().run_job(tgt, fun, arg, kwarg, tgt_type, listen)
        if self.told:
            new = {"tag": f"syndic/syndic1/salt/job/{pub['jid']}/new", "data": {"minions": pub["minions"]}}
            self.bus.events.insert(0, new)
        return {"jid": pub["jid"], "minions": []}


def master_of_masters(answering, told, syndic_wait=0.2):
    bus = Bus()
    client = MasterOfMasters(bus, ["node1", "node2"], answering, told)
    opts = {"order_masters": True, "syndic_wait": syndic_wait}
    return saltio.SaltAdapter(opts, default_timeout=60, client=client, listener=bus), bus


def test_a_master_of_masters_expects_the_minions_a_list_names():
    salt, _ = master_of_masters({"node1": True}, told=False)
    started = time.monotonic()
    assert salt.call(["node1", "node2"], "test.ping", timeout=0.3) == {"node1": True, "node2": False}
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("told", [True, False], ids=["the-syndic-says-which", "salt-3006-does-not-say"])
def test_a_master_of_masters_learns_which_minions_a_glob_reached(told):
    salt, _ = master_of_masters({"node1": True, "node2": {"x": 1}}, told=told)
    started = time.monotonic()
    assert salt.call("node*", "test.ping", tgt_type="glob", timeout=1) == {"node1": True, "node2": {"x": 1}}
    # Told: done once syndic_wait passed; not told: every answer within the timeout counts, so it lasts that long.
    assert (time.monotonic() - started < 0.9) is told


def test_a_master_of_masters_whose_syndic_says_a_minion_was_reached_waits_for_it():
    salt, _ = master_of_masters({"node1": True}, told=True)
    assert salt.call("node*", "test.ping", tgt_type="glob", timeout=0.3) == {"node1": True, "node2": False}


def test_a_master_of_masters_with_no_answer_and_no_word_is_an_empty_answer():
    salt, _ = master_of_masters({}, told=False)
    assert salt.call("nothing*", "test.ping", tgt_type="glob", timeout=0.3) == {}


def test_a_function_that_ends_as_it_runs_is_not_asked_after(monkeypatch):
    """``find_job=False`` (``event.fire``, ``test.ping``): a silent minion is no answer once ``timeout`` passed; no
    ``saltutil.find_job`` (it would wait up to GATHER s more for a minion that is gone)."""
    monkeypatch.setattr(saltio.SaltAdapter, "GATHER", 30)
    bus = Bus()
    client = SlowClient(bus)
    salt = saltio.SaltAdapter({}, client=client, listener=bus)
    started = time.monotonic()
    assert salt.call(["node1", "node2"], "event.fire", timeout=0.3, find_job=False) == {"node1": True, "node2": False}
    assert time.monotonic() - started < 2
    assert [job[1] for job in client.jobs] == ["event.fire"]


def test_a_minion_that_is_gone_is_not_reachable_after_timeout_seconds(monkeypatch):
    monkeypatch.setattr(saltio.SaltAdapter, "GATHER", 30)
    salt, client, _ = adapter(answering={"node1": True})
    started = time.monotonic()
    assert salt.reachable("node2", 1) is False
    assert time.monotonic() - started < 3
    assert {job[1] for job in client.jobs} == {"test.ping"}
    assert salt.reachable("node1", 1) is True


def test_a_read_that_must_not_wait_asks_salt_for_a_millisecond_never_for_0():
    """Salt's ``get_event`` reads ``wait=0`` as "forever": the health gate's catching up with the bus before a node
    is disrupted (``get_event(wait=0)``) must neither block nor wait the 10 ms a timed read once took at least."""
    asked = []

    class Listener(Bus):
        def get_event(self, wait=5, full=False, auto_reconnect=False):
            asked.append(wait)
            return super().get_event(wait, full, auto_reconnect)

    event = {"tag": "salt/beacon/node2/expressware/inactive", "data": {"id": "node2"}}
    salt = saltio.SaltAdapter({}, client=Client(None, [], {}), listener=Listener(event))
    assert salt.get_event(wait=0) == (event["tag"], event["data"])
    assert salt.get_event(wait=0) is None
    assert asked == [saltio.DRAIN_WAIT, saltio.DRAIN_WAIT] and 0 < saltio.DRAIN_WAIT <= 0.002
    assert salt.get_event(wait=0.5) is None and asked[-1] == 0.5  # a wait asked for is Salt's as given
