"""The rolling driver's update of one node: the cluster health gate passed, the prepared job released (or the
state's job published, or a lost driver's job followed), the node's events watched until it is active on the target,
or failed. While it is down, the RPMs the next nodes need are staged.

A mixin of ``expressware_driver.Driver`` (its ``salt``, ``args``, ``record``, ``gates``, ``view``, the health gate,
``say``/``save``/``save_node``/``fire``/``announce_halt``/``halt``, ``node_state``, ``state_kwarg``/``gate_kwarg``).
What each event means is ``expressware_watch.NodeWatch``'s.
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


plan_lib = _sibling("expressware_rollout")
watch = _sibling("expressware_watch")
saltio = _sibling("expressware_salt")
health = _sibling("expressware_health")
health_gate = _sibling("expressware_driver_health")
waits_lib = _sibling("expressware_driver_waits")

LostMaster = saltio.LostMaster

#: Seconds to wait for a minion's answer to ``saltutil.find_job`` about the job being followed (none: asked again
#: ``expressware_watch.FOLLOW_CHECK`` seconds later).
FIND_JOB_TIMEOUT = 5


class NodeUpdate:
    """One node's update (``do_update``, the walk's ``update`` action) of a :class:`expressware_driver.Driver`."""

    def do_update(self, minion):
        record, timeout = self.record, self.args["timeout"]
        position = record["order"].index(minion) + 1
        resumed = record["nodes"][minion]["phase"] in plan_lib.IN_FLIGHT
        # The cluster health gate: every other member active before this node is disrupted (costs nothing when the
        # view, fed while the last node was down, says so); after a resume too (a new driver did not see it go).
        if not self.health_gate(minion):
            return None
        passed = self.salt.monotonic()
        prepared = None if resumed else self.gates.release(minion)
        # A released job answered its go-ahead already: it is reachable. Else ask, since a job published to a
        # minion that has not reconnected (after a master restart) would be lost without a trace.
        if prepared is None and not self.salt.reachable(minion, timeout):
            return self.halt(f"{minion} did not answer for {timeout} s before its turn; nothing was started on it")
        cancelled_gate = record["nodes"][minion].get("gate") if prepared is None else None
        if prepared is None and not self.gates.cancel_gate(minion, "updated the ordinary way"):
            # A prepared job left waiting would hold the node's state queue.
            return self.halt(f"{minion} did not acknowledge the cancel of its prepared job; nothing was started on it")
        if self.salt.monotonic() - passed > health_gate.HEALTH_RECHECK and not self.health_gate(minion):
            return None  # the prepared job waited long: what was heard meanwhile counts (no go was sent)
        plan_lib.mark_phase(record, minion, plan_lib.STOPPING, self.salt.time())
        self.save_node(minion)
        self.say(
            f"{minion} ({position}/{len(record['order'])}): "
            + ("continuing the interrupted update" if resumed else "updating")
        )
        self.fire(f"node/{minion}/begin", {"minion": minion, "position": position})
        if prepared is not None:
            jid = prepared.jid
            # The go-ahead, acknowledged: the node starts on it at once.
            if not self.gates.go(prepared):
                # A prepared job changes nothing without its go; the node reported no step.
                plan_lib.unmark_begun(
                    record,
                    minion,
                    self.salt.time(),
                    f"{minion} did not answer for {timeout} s before its turn "
                    "(its go-ahead was not acknowledged); nothing was started on it",
                )
                return self.halt()
            plan_lib.clear_gate(record, minion)
            self.save_node(minion)
        elif jid := self._running_update(minion, cancelled_gate) if resumed else None:
            # The update a lost driver started is still running: a second job would wait in the node's state
            # queue (Salt 3008.4 fails such a queued state.single).
            self.say(f"{minion}: its update (job {jid}) still runs; following it")
        else:
            jid = self.salt.publish(
                [minion], "state.single", ["expressware.installed", record["version"]], kwarg=self.state_kwarg()
            )
            if not jid:
                return self._failed(minion, "the job could not be published (minion not connected?)")
        deadline = self.salt.monotonic() + record["options"]["node_timeout"]
        # While it is down: stage the RPMs the nodes after it need (its events wait in the listener). A failure
        # halts the rollout once this node is done.
        tried = []
        while (work := plan_lib.background_action(record, tried)) is not None:
            tried.append(work)
            getattr(self, "do_" + work[0])(*work[1:], background=True)
            self.save_group(work[1])
        outcome, evidence = self.await_node(minion, jid, deadline, resumed=resumed)
        if outcome is not None:
            return self._failed(minion, outcome)
        # Active by the node's own look at itself, made by this job (the event's node state); after a restart
        # or a beacon's word, a direct look instead.
        looked = self.salt.time()
        state = evidence or self.node_state(minion)
        if evidence is None and state["state"] == "unknown" and self.salt.reachable(minion, timeout):
            # No answer: the minion was restarting (its salt-minion stopped while the job finished). Ask again.
            state = self.node_state(minion)
        if self._on_target(state):
            plan_lib.mark_active(record, minion, state["running"], self.salt.time())
            if self.view is not None and self.view.flight and self.view.flight["minion"] == minion:
                # As old as its evidence: the node's going down again after it (its beacon) is newer.
                self.view.landed(minion, self.done_at if evidence is not None else looked, state)
            self.say(f"{minion}: active on {state['running']}", record=False)  # mark_active logged it
            self.fire(f"node/{minion}/done", {"minion": minion, "version": state["running"]})
            return None
        return self._failed(
            minion,
            f"reported active, but a direct check finds it {state['state']} "
            f"(installed {state['installed']}, running {state['running']}): " + "; ".join(state["reasons"]),
            state,
        )

    def _running_update(self, minion, cancelled_gate):
        """The jid of this rollout's ``expressware.installed`` job still running on ``minion`` (published by a
        lost driver), else None. A prepared job at ``cancelled_gate`` (just cancelled) does not count."""
        jobs = self.salt.call([minion], "saltutil.running", timeout=self.args["timeout"]).get(minion)
        for job in jobs if isinstance(jobs, list) else []:
            arg = job.get("arg") or []
            kwarg = next((a for a in arg if isinstance(a, dict) and a.get("__kwarg__")), {})
            if (
                job.get("fun") == "state.single"
                and arg[:2] == ["expressware.installed", self.record["version"]]
                and (not cancelled_gate or kwarg.get("gate") != cancelled_gate)
            ):
                return job.get("jid")
        return None

    def await_node(self, minion, jid, deadline, resumed=False):
        """Wait for the node's job and its return to active (:class:`expressware_watch.NodeWatch` says what each
        event means): ``(None, node_state or None)`` on success, else ``(error, None)``."""
        node = watch.NodeWatch(minion, jid, deadline, self.record["options"]["node_timeout"], resumed=resumed)
        looks = waits_lib.LongWait(self, minion)
        while True:
            looks.tick()
            event = self.salt.get_event(wait=max(0.01, min(node.remaining(self.salt.monotonic()), 5)))
            if event:
                self.gates.observe(*event)
                looks.observe(*event)
            look = False
            for step in node.observe(*(event or (None, None)), self.salt.monotonic()):
                if step.kind == watch.PHASE:
                    plan_lib.mark_phase(self.record, minion, step.value, self.salt.time())
                    self.save_node(minion)
                    self.say(f"{minion}: {step.value}", record=False)  # mark_phase logged it
                    self.fire(f"node/{minion}/phase", {"minion": minion, "phase": step.value})
                    look = self.view is not None and step.value == plan_lib.INSTALLING
                elif step.kind == watch.PREPARE:
                    self.gates.prepare(plan_lib.upcoming(self.record, current=minion), self.gate_kwarg())
                elif step.kind == watch.PROBE:
                    self.say(f"{minion}: minion restarted; asking it to report when the node is active")
                    try:
                        probe = self.salt.publish(
                            [minion],
                            "expressware.wait_active",
                            kwarg={"timeout": max(1, int(deadline - self.salt.monotonic()))},
                        )
                    except LostMaster:
                        probe = None  # the beacon's event or the deadline decide
                    node.probing(probe)
                elif step.kind == watch.FIND_JOB:
                    # A job a lost driver published (maybe on another master: its return goes there).
                    answer = self.salt.call([minion], "saltutil.find_job", [jid], timeout=FIND_JOB_TIMEOUT).get(minion)
                    if node.job_running(answer):
                        return self._unheard_end(minion, jid)
                elif step.kind == watch.DONE:
                    self.done_at = health.stamp_time(event[1], self.salt.time()) if event else self.salt.time()
                    return None, step.value
                elif step.kind == watch.FAILED:
                    return step.value, None
                elif step.kind == watch.TIMEOUT:
                    return node.timeout_error(self.node_state(minion)), None
            if look:
                # While it installs (down), one look at every other member: their answers come with the events, so
                # the gate before the next node costs the handover nothing. Once per flight: every look is a
                # node_state on each member (the vendor tools run), which slows the cluster it looks at. After the
                # next node's job is published (PREPARE), and not at that node: its job checks it, and gets ready
                # sooner with its minion to itself. Its own state is no condition of its own turn.
                prepared = self.gates.prepared.minion if self.gates.prepared else None
                self.ask_members([m for m in self.view.members if m not in (minion, prepared)])

    def _on_target(self, state):
        """Is the node (its ``expressware.node_state``) active, running and installed on the rollout's version?"""
        version = self.record["version"]
        return bool(state["active"]) and state["running"] == version and state["installed"] == version

    def _unheard_end(self, minion, jid):
        """The followed job ``jid`` ended and its return did not come here: the node's own look decides, ``(None,
        node_state)`` when it is active on the target, else ``(error, None)``."""
        self.say(
            f"{minion}: its update (job {jid}) has ended and its return did not come here (another master's job?): "
            "looking at the node"
        )
        state = self.node_state(minion)
        if self._on_target(state):
            self.done_at = self.salt.time()  # as old as this look
            return None, state
        return (
            f"its update (job {jid}, followed after a resume) ended without its return reaching this master, and the "
            f"node is {state['state']} (installed {state['installed']}, running {state['running']}): "
            + "; ".join(state["reasons"]),
            None,
        )

    def _failed(self, minion, error, state=None):
        state = state or self.node_state(minion)
        plan_lib.mark_failed(self.record, minion, error, self.salt.time(), after=state.get("installed"))
        self.say(f"{minion} FAILED: {error}")
        self.say(
            "halted: no further node is touched; the cluster's update lease stays taken. "
            "Fix the node, then rolling.resume (or rolling.resume skip='[" + minion + "]')"
        )
        self.fire(f"node/{minion}/failed", {"minion": minion, "error": error})
        self.announce_halt()
