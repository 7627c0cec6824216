"""The rolling driver's waits that say so: the maintenance window (the walk waits, paused with the reason, and
goes on by itself when the window lets the next node start) and the long wait of a node in flight longer than it
should take (the progress says how long out of how long, and what the node says).

A mixin of ``expressware_driver.Driver`` and the ``LongWait`` it uses while it waits for a node.
"""

import importlib.util
import os
import sys


def _sibling(name):
    """Another module of this directory: the same module object the loader modules' ``_shared()`` gives."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


protocol = _sibling("expressware_protocol")
plan_lib = _sibling("expressware_rollout")
saltio = _sibling("expressware_salt")
window_lib = _sibling("expressware_window")

#: Seconds a node in flight longer than it should take has to answer the driver's look at it
#: (``expressware.node_state``); after that the progress says it did not answer.
EVIDENCE_TIMEOUT = 10
LostMaster = saltio.LostMaster


class Waits:
    """The maintenance window's wait and the long wait's notes of a :class:`expressware_driver.Driver` (its
    ``salt``, ``clock``, ``record``, ``rollouts``, ``gates``, ``say``/``save``/``save_node``/``fire``/``halt``)."""

    def await_window(self, minion):
        """Before ``minion``'s update: when the rollout's maintenance window does not let it start now (closed, or
        it would not be back before it closes), wait until it does, checking for an abort; False when it may
        start at once (or began already). Builds and staging are not held: they do not touch a node's service."""
        record, opts = self.record, self.record["options"]
        if not opts.get("window"):
            return False
        if (record["nodes"].get(minion) or {}).get("phase") in plan_lib.IN_FLIGHT:
            return False  # its update began (a driver died meanwhile): it may be down, it is finished first
        win = window_lib.parse(opts["window"], opts.get("window_tz"))
        now, expected = self.clock(), window_lib.expected_seconds(record)
        reason = win.wait_reason(now, expected, what=minion)
        if reason is None:
            return False
        until = win.next_start(now, expected)
        if until is None:
            self.halt(reason)
            return True
        # A prepared job would hold the node's state queue (and its gate times out) meanwhile.
        self.gates.cancel_prepared("waiting for the maintenance window")
        plan_lib.wait_for_window(record, reason, until, self.salt.time())
        self.save()
        self.say(f"waiting: {reason}", record=False)  # wait_for_window logged it
        self.fire("waiting", {"reason": reason, "until": until})
        while self.clock() < until:
            if self.rollouts.abort_requested(record["id"]):
                return True  # the walk's next step aborts
            event = self.salt.get_event(wait=max(0.01, min(1.0, until - self.clock())))
            if event:
                self.gates.observe(*event)
        plan_lib.end_wait(record, self.salt.time())
        self.save()
        self.say(f"the maintenance window {win.describe()} is open: going on", record=False)
        self.fire("resumed", {"reason": "the maintenance window is open"})
        return True

    def say_evidence(self, minion, note):
        """A long wait's note: said, and kept on the node for ``rolling.status``."""
        self.say(note, record=False)
        self.record["nodes"][minion]["evidence"] = {"time": self.salt.time(), "note": note}
        self.save_node(minion)


class LongWait:
    """A node in flight longer than it should take (``expressware_window.should_say``): every half minute or so
    the driver asks it how it is (``expressware.node_state``, published: the wait for its events goes on
    meanwhile) and says how long it has waited out of ``node_timeout`` and what the node answered."""

    def __init__(self, driver, minion):
        self.driver, self.minion = driver, minion
        self.said_at = None
        self.asked = None  # (return tag, when) of the look that is out

    def tick(self):
        driver, now = self.driver, self.driver.salt.time()
        if self.asked is not None:
            if now - self.asked[1] >= EVIDENCE_TIMEOUT:
                self._say(None)
            return
        if not window_lib.should_say(driver.record, self.minion, now, self.said_at):
            return
        try:
            jid = driver.salt.publish([self.minion], "expressware.node_state")
        except LostMaster:
            jid = None
        if jid:
            self.asked = (protocol.job_return_tag(jid, self.minion), now)
        else:
            self._say(None)

    def observe(self, tag, data):
        if self.asked is not None and tag == self.asked[0] and protocol.node_of(data) == self.minion:
            ret = data.get("return")
            self._say(ret if isinstance(ret, dict) else str(ret))

    def _say(self, node_state):
        driver, now = self.driver, self.driver.salt.time()
        driver.say_evidence(self.minion, window_lib.waiting_note(driver.record, self.minion, now, node_state))
        self.said_at, self.asked = now, None
