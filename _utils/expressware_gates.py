"""The runner's side of the gates: the next node's job published ahead of its turn, held, released or cancelled.

The next node's job is published while the current node is in flight. Its state checks the node and fetches the
installer, announces ``ready`` and waits at a gate on its own event bus (the state's ``gate`` argument); it
changes nothing before the runner releases it with ``expressware/gate/go``, which happens only once the current
node is back active. The checks, installer fetch and state start-up are then off the critical path: the handover
is one publish. What the job's events mean is :class:`expressware_watch.PreparedJob`'s; this module does the I/O
(through the adapter) and keeps the gate in the record (``journal``: the driver's record, save, say).
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
watch = _sibling("expressware_watch")
saltio = _sibling("expressware_salt")


class Gates:
    """Prepared jobs of one rollout; ``timeout``: seconds to wait for a minion's short answers."""

    def __init__(self, salt, journal, timeout):
        self.salt, self.journal, self.timeout = salt, journal, timeout
        self.prepared = None

    @property
    def record(self):
        return self.journal.record

    def observe(self, tag, data):
        """Follow the prepared job in an event read while waiting for something else."""
        if self.prepared is not None:
            self.prepared.observe(tag, data)

    def prepare(self, minion, kwarg):
        """Publish ``minion``'s job (``state.single`` with ``kwarg``) ahead of its turn, held at a new gate."""
        if minion is None or (self.prepared and self.prepared.minion == minion):
            return
        self.cancel_prepared("superseded")
        gate = protocol.new_gate(self.record["id"])
        try:
            jid = self.salt.publish(
                [minion],
                "state.single",
                ["expressware.installed", self.record["version"]],
                kwarg=dict(kwarg, gate=gate),
            )
        except saltio.LostMaster:
            jid = None
        if not jid:
            return  # it will be updated the ordinary way at its turn
        self.prepared = watch.PreparedJob(minion, gate, jid)
        plan_lib.mark_prepared(self.record, minion, gate, self.salt.time())
        self.journal.save_node(minion)
        self.journal.say(f"{minion}: prepared (checks, installer fetch); it waits for its go-ahead", record=False)

    def release(self, minion):
        """The prepared job of ``minion`` once ready at its gate, or None: then it is updated the ordinary way."""
        prepared = self.prepared
        if not prepared or prepared.minion != minion:
            self.cancel_prepared("another node comes first")
            return None
        self._wait_settled(prepared)
        if prepared.usable:
            return prepared
        self.journal.say(
            f"{minion}: its prepared job {prepared.why_unusable(self.timeout)}; it is updated the ordinary way"
        )
        if not prepared.ret:
            # Not ready in time, or its minion restarted (a stopping salt-minion leaves its jobs running): make
            # sure it cannot hold the node's state queue. No go was sent, so it changed nothing.
            self._end_unready(prepared, "not ready in time")
        return None

    def go(self, prepared):
        """Release ``prepared``; True when its minion acknowledged the go-ahead (if not, and it is back, the go
        is sent once more without waiting)."""
        event = protocol.go_event(prepared.gate)
        if self.salt.fire_on_minion(prepared.minion, protocol.GATE_GO, event, timeout=self.timeout):
            return True
        if not self.salt.reachable(prepared.minion, self.timeout):
            return False
        self.salt.fire_on_minion(prepared.minion, protocol.GATE_GO, event, acknowledged=False)
        return True

    def _wait_settled(self, prepared):
        """Follow ``prepared`` (``timeout`` seconds at most) until it is ready, has ended, or was lost; it is no
        longer the prepared job after."""
        self.prepared = prepared
        deadline = self.salt.monotonic() + self.timeout
        try:
            while not prepared.settled and self.salt.monotonic() < deadline:
                event = self.salt.get_event(wait=max(0.01, min(1, deadline - self.salt.monotonic())))
                if event:
                    prepared.observe(*event)
        finally:
            self.prepared = None

    def _end_unready(self, prepared, reason):
        """End a prepared job not (known to be) at its gate: the cancel, should it listen after all, and a kill."""
        self.salt.fire_on_minion(
            prepared.minion, protocol.GATE_CANCEL, protocol.cancel_event([prepared.gate], reason), acknowledged=False
        )
        self.salt.call([prepared.minion], "saltutil.kill_job", [prepared.jid], timeout=10)

    def cancel_prepared(self, reason):
        """Make sure a prepared job does not go on (it ends having changed nothing).

        A cancel event reaches only a job that already listens at its gate: one still in its checks would miss
        it and then hold the node's state queue until its gate_timeout. So first wait (``timeout`` at most)
        until it is ready or has ended; a job not ready by then is killed (no go was sent: it changed nothing)."""
        prepared, self.prepared = self.prepared, None
        if not prepared:
            return
        self._wait_settled(prepared)
        if prepared.ret:
            return
        event = protocol.cancel_event([prepared.gate], reason)
        if prepared.ready and self.salt.fire_on_minion(prepared.minion, protocol.GATE_CANCEL, event, timeout=10):
            plan_lib.clear_gate(self.record, prepared.minion)
            self.journal.save_node(prepared.minion)
            return
        self._end_unready(prepared, reason)

    def cancel_gate(self, minion, reason):
        """Cancel the gate recorded for ``minion`` and wait for the minion to acknowledge it (a publish to a
        minion that has not reconnected yet, after a master restart, is lost: the job would hold the node's
        state queue). True when acknowledged, or when there is none."""
        gate = self.record["nodes"][minion].get("gate")
        if not gate:
            return True
        if not self.salt.fire_on_minion(
            minion, protocol.GATE_CANCEL, protocol.cancel_event([gate], reason), timeout=self.timeout
        ):
            return False
        plan_lib.clear_gate(self.record, minion)
        self.journal.save_node(minion)
        return True

    def cancel_open_gates(self):
        """After a lost driver: cancel the prepared jobs it may have left waiting."""
        gates = plan_lib.open_gates(self.record)
        if gates:
            self.journal.say(f"cancelling the prepared job(s) of an earlier driver on {', '.join(sorted(gates))}")
            for minion in gates:
                if not (
                    self.salt.reachable(minion, self.timeout) and self.cancel_gate(minion, "a new driver took over")
                ):
                    self.journal.say(f"{minion}: could not cancel its prepared job now; again at its turn")
