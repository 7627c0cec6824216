"""What a node's events mean while the runner waits for it: the per-node wait and the prepared job, as plain data.

No Salt, no I/O, no clock of its own (``now`` is passed in): the driver reads an event from the master bus, hands it
to :meth:`NodeWatch.observe` and does the steps it returns (record a phase, prepare the next node, probe the node,
or stop waiting: done or failed); :class:`PreparedJob` follows the next node's job held at its gate in the same
events. Unit tests drive both with recorded event sequences.

What counts, and why:

- the node's job return (``salt/job/<jid>/ret/<minion>``): its success or its error;
- the node's phase events (``expressware/node/phase`` with Salt's verified ``id``): recorded; an earlier
  ``active`` (a beacon tick) predates a new step and no longer counts;
- its ``expressware/node/active`` event (its own look at itself: the evidence), or the beacon's ``active``
  naming it in tag *and* data, or the return of the ``wait_active`` probe asked after a restart;
- ``salt/minion/<minion>/start``: the minion restarted (a reboot, or salt-minion itself): its job is lost, and so
  may be the active event it was about to send; the node is probed (``wait_active``) and, once active, looked at
  directly (the evidence of a lost job does not count). One probe at a time: a minion that fires its start event at
  every reconnection (Salt 3007 after a master restart, see README "Supported Salt versions") is probed again only
  once the probe out has gone unanswered for ``PROBE_INTERVAL`` seconds, not once per event.

The node is done when it is active and its job succeeded (or the minion restarted: the job cannot return);
a job resumed from a lost driver is done once it succeeded (its active event went to the lost listener). Such a job's
return goes to the master that published it, which may be another one (multi-master): every ``FOLLOW_CHECK``
seconds the driver asks the minion whether it still runs the job (``saltutil.find_job``); once it does not, the wait
ends unheard and the driver looks at the node itself.
Events of other minions, or naming another minion than the one they come from, do not count.
"""

import collections
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

#: What the driver does next for a node it waits for.
PHASE, PREPARE, PROBE, DONE, FAILED, TIMEOUT = "phase", "prepare", "probe", "done", "failed", "timeout"
#: Ask the minion whether it still runs the job (a resumed job's return may go to another master); then ``UNHEARD``:
#: it does not, and no return came here (the driver looks at the node itself).
FIND_JOB, UNHEARD = "find_job", "unheard"
#: Phases the state reports while the node is being updated (it may be down).
IN_FLIGHT = ("stopping", "installing", "waiting")

Step = collections.namedtuple("Step", "kind value")

#: Seconds an unanswered probe stands before another start event of its minion asks again (a probe lost with a
#: second restart is replaced; a burst of start events costs one ``wait_active`` job, not one each).
PROBE_INTERVAL = 30

#: Seconds between two questions (``saltutil.find_job``) about a job a lost driver started, while it is followed.
FOLLOW_CHECK = 5


class NodeWatch:
    """The wait for one node's update job (``jid``) and its return to active, until ``deadline``."""

    def __init__(self, minion, jid, deadline, node_timeout, resumed=False):
        self.minion, self.jid, self.deadline, self.node_timeout = minion, jid, deadline, node_timeout
        self.resumed = resumed
        self.job_done = self.active_seen = self.restarted = False
        self.evidence = None
        self.probe_tag = None
        self.probed_at = None  # when the last probe was asked for
        self.reprobe = False  # a start event came while a probe was out: ask again if it stays unanswered
        self.checked_at = None  # when the followed job (resumed) was last asked about, or first seen
        self.finished = None

    def remaining(self, now):
        return self.deadline - now

    def probing(self, jid):
        """The ``wait_active`` asked for after a restart was published as ``jid`` (None: it was not)."""
        self.probe_tag = protocol.job_return_tag(jid, self.minion) if jid else None

    def observe(self, tag, data, now):
        """Take one event (``tag`` None: none came, time passed); return the steps, in order."""
        if self.finished is not None:
            return [self.finished]
        steps = self._event(tag, data) if tag is not None else []
        if any(step.kind == FAILED for step in steps):
            self.finished = steps[-1]
            return steps
        if (
            self.reprobe
            and self.probe_tag is not None
            and not self.active_seen
            and now - self.probed_at >= PROBE_INTERVAL
        ):
            steps.append(Step(PROBE, None))
        if any(step.kind == PROBE for step in steps):
            self.probed_at, self.reprobe = now, False
        if self.active_seen and (self.job_done or self.restarted):
            self.finished = Step(DONE, self.evidence)
        elif self.resumed and self.job_done:
            self.finished = Step(DONE, None)
        elif now >= self.deadline:
            self.finished = Step(TIMEOUT, self.restarted)
        if self.finished is not None:
            steps.append(self.finished)
        elif self.resumed and not self.job_done:
            if self.checked_at is None:
                self.checked_at = now
            elif now - self.checked_at >= FOLLOW_CHECK:
                self.checked_at = now
                steps.append(Step(FIND_JOB, self.jid))
        return steps

    def job_running(self, answer):
        """The minion's answer to ``saltutil.find_job`` after a ``FIND_JOB`` step: ``{}`` (it runs no such job) ends
        the wait, unheard (its return went elsewhere, or is on its way); the job's description, or no answer (a
        minion restarting), changes nothing. The steps: ``[]`` or the final ``UNHEARD``."""
        if self.finished is None and answer == {} and not self.job_done:
            self.finished = Step(UNHEARD, None)
            return [self.finished]
        return []

    def timeout_error(self, state):
        """The error of a node not active by the deadline, with the node's own look at itself (``state``)."""
        return (
            ("the minion restarted during its update (its job was lost); " if self.restarted else "")
            + f"not active within {self.node_timeout} s (a timeout is a failure): "
            f"{state['state']}, installed {state['installed']}, running {state['running']}; "
            + "; ".join(state["reasons"])
        )

    def _event(self, tag, data):
        minion = self.minion
        data = data if isinstance(data, dict) else {}
        if tag == protocol.job_return_tag(self.jid, minion):
            error = protocol.job_error(data)
            if error:
                return [Step(FAILED, error)]
            self.job_done = True
        elif tag == protocol.NODE_PHASE and protocol.node_of(data) == minion:
            self.active_seen, self.evidence = False, None  # an earlier "active" (a beacon tick) predates this step
            phase = protocol.phase_of(data)
            steps = [Step(PHASE, phase)] if phase in IN_FLIGHT else []
            if phase == "installing":
                steps.append(Step(PREPARE, None))  # it is down for a while: the next node gets ready meanwhile
            return steps
        elif tag == protocol.NODE_ACTIVE and protocol.node_of(data) == minion:
            self.active_seen = True
            self.evidence = None if self.restarted else protocol.reported_state(data)
        elif tag == protocol.beacon_tag(minion, protocol.BEACON_ACTIVE) and protocol.node_of(data) == minion:
            self.active_seen, self.evidence = True, None
        elif tag == protocol.beacon_tag(minion, protocol.BEACON_INACTIVE) and protocol.node_of(data) == minion:
            self.active_seen = False
        elif self.probe_tag is not None and tag == self.probe_tag:
            # The answer of the wait_active asked for after a restart, in case its event was lost.
            ret = data.get("return")
            if isinstance(ret, dict) and ret.get("active") is True:
                self.active_seen, self.evidence = True, None
            self.probe_tag = None  # answered: none is out
        elif tag == protocol.minion_start_tag(minion):
            self.restarted, self.evidence = True, None
            if self.probe_tag is not None:
                self.reprobe = True  # one is out: observe() asks again only once it has stood PROBE_INTERVAL
                return []
            return [Step(PROBE, None)]
        return []


class PreparedJob:
    """The next node's job, published ahead of its turn and held at ``gate`` until released."""

    def __init__(self, minion, gate, jid):
        self.minion, self.gate, self.jid = minion, gate, jid
        self.ready = False
        self.ret = None
        self.lost = False

    def observe(self, tag, data):
        """Follow the job in an event read while waiting for something else."""
        data = data if isinstance(data, dict) else {}
        if tag == protocol.job_return_tag(self.jid, self.minion):
            self.ret = data or {"return": None}  # it ended before its go: it is not used
        elif (
            tag == protocol.NODE_PHASE and protocol.node_of(data) == self.minion and protocol.gate_of(data) == self.gate
        ):
            self.ready = protocol.phase_of(data) == protocol.READY
        elif tag == protocol.minion_start_tag(self.minion):
            self.lost = True  # the minion restarted: the job is gone

    @property
    def settled(self):
        """Ready at its gate, ended, or lost: nothing more to wait for."""
        return bool(self.ready or self.ret or self.lost)

    @property
    def usable(self):
        """Can it be released (it waits at its gate)?"""
        return bool(self.ready and not self.ret and not self.lost)

    def why_unusable(self, timeout):
        return (
            "ended before its turn"
            if self.ret
            else "was lost with its minion"
            if self.lost
            else f"was not ready within {timeout} s"
        )
