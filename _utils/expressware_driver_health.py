"""The rolling driver's cluster health gate: no node is disrupted while another member of its cluster is down.

A mixin of ``expressware_driver.Driver``: the live view (``expressware_health.ClusterView``) fed by every event the
driver reads (``Watched``), the members looked at directly (at the pre-flight, while a node is down, while held),
and the gate itself before each disruption: go, hold (``held`` event) up to ``health_wait``, or halt. With a
``frontend`` (and ``cluster_states`` not ``unchecked``), its Network Manager's state is a second gate: in
``cluster_states``, and reported again after each node's flight (``expressware/cluster/state`` events, and its
notification script's state file read directly with ``expressware.cluster_state`` at the pre-flight and while held).
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
saltio = _sibling("expressware_salt")
health = _sibling("expressware_health")

#: Seconds between two looks at the members in the way while the rollout holds for the cluster's health.
HEALTH_ASK = 5
#: Seconds after the gate passed beyond which it is passed again before the node is disrupted (its prepared job
#: was not ready at once).
HEALTH_RECHECK = 0.2
#: With a frontend, in the first CLUSTER_POLL_FOR seconds of a gate (right after a node's flight, when the Network
#: Manager is about to report UP again), its state file is read every CLUSTER_POLL seconds rather than every
#: HEALTH_ASK: the notification script writes the report there before its ``salt-call`` (a second or more) puts it
#: on the bus.
CLUSTER_POLL, CLUSTER_POLL_FOR = 0.5, 10
LostMaster = saltio.LostMaster


class Watched:
    """The adapter, each event read from it shown to the cluster health view as well (whoever reads it: the
    driver, the gates, a call collecting its returns)."""

    def __init__(self, salt, seen):
        object.__setattr__(self, "_salt", salt)
        object.__setattr__(self, "_seen", seen)

    def __getattr__(self, name):
        return getattr(self._salt, name)

    def __setattr__(self, name, value):
        setattr(self._salt, name, value)  # one adapter: what is set on it is set for every user of it

    def get_event(self, wait):
        event = self._salt.get_event(wait)
        if event:
            self._seen(*event)
        return event


class HealthGate:
    """The cluster health gate of a :class:`expressware_driver.Driver` (its ``salt``, ``args``, ``record``,
    ``gates``, ``say``/``save``/``fire``/``halt``; ``view`` and ``health_asks`` are set by the driver)."""

    def new_view(self, targeted):
        """The live view of the cluster: the targeted nodes plus the members the operator names; the extra ones."""
        try:
            named = self.resolve_members(self.args.get("cluster_members"), self.args["cluster"])
        except Exception as exc:  # pylint: disable=broad-except  # the master's cache: say it, go without
            self.say(f"cluster members {self.args.get('cluster_members')!r} could not be resolved: {exc}")
            named = []
        left_out = set(((self.record or {}).get("health") or {}).get("left_out") or [])
        extra = sorted(set(named) - set(targeted) - left_out)
        self.view = health.ClusterView(
            list(targeted) + extra,
            frontend=self.reporting_frontend(),
            health_wait=self.args.get("health_wait", health.DEFAULT_HEALTH_WAIT),
        )
        return extra

    def reporting_frontend(self):
        """The frontend whose Network Manager's state the gate requires, or None (none given, or ``unchecked``;
        a record from before ``cluster_states`` has none either)."""
        if self.args.get("cluster_states") is None:
            return None
        return (self.args.get("options") or {}).get("frontend")

    def cluster_states(self):
        """The Network Manager states under which a node may be disrupted."""
        return tuple(self.args.get("cluster_states") or health.DEFAULT_ALLOWED)

    def look_at_cluster(self):
        """Read the frontend's last cluster-state report directly (``expressware.cluster_state``, bounded) into
        the view; what was wrong with the answer, or None."""
        frontend, asked = self.view.frontend, self.salt.time()
        answer = self.salt.call([frontend], "expressware.cluster_state", timeout=self.args["timeout"]).get(frontend)
        if not isinstance(answer, dict):
            return "did not answer" if answer in (None, False) else str(answer)
        taken, note = self.view.cluster_answer(answer, asked)
        if not taken and self.view.cluster["state"] is None:
            return note
        return None

    def look_at(self, members):
        """Ask ``members`` directly, all at once and bounded; their answers go into the view."""
        asked = self.salt.time()
        answers = (
            self.salt.call(list(members), "expressware.node_state", timeout=self.args["timeout"], tgt_type="list")
            if members
            else {}
        )
        for minion in members:
            self.view.answer(minion, answers.get(minion), asked)

    def preflight_health(self, facts, asked):
        """Every other member of the cluster is active: a problem per member that is not (the targeted nodes'
        own activity is the pre-flight's already)."""
        extra = self.new_view(sorted(facts))
        for minion, fact in facts.items():
            self.view.answer(minion, fact.get("node_state") if isinstance(fact, dict) else None, asked)
        self.look_at(extra)
        if extra:
            self.say(f"pre-flight: cluster members beyond the target: {', '.join(extra)}")
        problems = []
        if self.view.frontend is not None:
            problem, cluster = self.look_at_cluster(), self.view.cluster
            if problem is None and cluster["state"] not in self.cluster_states():
                problem = (
                    f"the cluster is {cluster['state']} by its Network Manager (allowed: "
                    f"{', '.join(self.cluster_states())}); no node is disrupted until it reports one of those"
                )
            elif problem is not None:
                advice = f"install the notification script (salt {self.view.frontend} state.apply expressware.notify)"
                problem = (
                    f"the cluster state of its Network Manager cannot be read: {problem}"
                    + ("" if "expressware.notify" in problem else f"; {advice}")
                    + "; or cluster_states=unchecked"
                )
            if problem is not None:
                problems.append((self.view.frontend, problem))
            else:
                self.say(f"pre-flight: the frontend {self.view.frontend} reports the cluster {cluster['state']}")
        for minion in extra:
            node = self.view.nodes[minion]
            if node["state"] != health.ACTIVE:
                problems.append(
                    (
                        minion,
                        f"a member of the cluster is {node['state']}: "
                        + ("; ".join(node["reasons"]) or "no reason given")
                        + "; no node is disrupted while another member is down",
                    )
                )
        return problems

    def ask_members(self, members):
        """One asynchronous ``expressware.node_state`` of ``members``: their returns are read with the other
        events (:meth:`health_event`), so the look costs the walk nothing."""
        members = sorted(set(members))
        if not members or self.view is None:
            return
        try:
            jid = self.salt.publish(members, "expressware.node_state")
        except LostMaster:
            return  # the next look, or the events, tell
        if jid:
            self.health_asks[jid] = (self.salt.time(), members, "node")

    def ask_cluster(self):
        """One asynchronous ``expressware.cluster_state`` of the frontend (an event it sent may have been lost):
        its return is read with the other events (:meth:`health_event`)."""
        try:
            jid = self.salt.publish([self.view.frontend], "expressware.cluster_state")
        except LostMaster:
            return
        if jid:
            self.health_asks[jid] = (self.salt.time(), [self.view.frontend], "cluster")

    def health_event(self, tag, data):
        """An event read from the bus, for the view: a member's answer to a look, or a health event."""
        if self.view is None:
            return
        parts = tag.split("/")
        if len(parts) == 5 and parts[:2] == ["salt", "job"] and parts[3] == "ret" and parts[2] in self.health_asks:
            asked, members, kind = self.health_asks[parts[2]]
            if parts[4] in members and data.get("out") != "no_return":
                if kind == "cluster":
                    self.view.cluster_answer(data.get("return"), asked)
                else:
                    self.view.answer(parts[4], data.get("return"), asked)
            return
        self.view.event(tag, data, health.stamp_time(data, self.salt.time()))

    def health_gate(self, minion):
        """May ``minion`` be disrupted? True (it is marked in flight in the view); else the rollout holds, up to
        ``health_wait`` seconds, for every other member to be active, and halts (False) with the evidence. False
        too when the operator asks to abort meanwhile (the next step aborts). The time it took is added to the
        record's ``health.gate_s`` of ``minion`` (the gate's own cost per handover, for the benchmark)."""
        if self.view is None:
            return True
        started = self.salt.monotonic()
        try:
            return self._health_gate(minion)
        finally:
            spent = self.record.setdefault("health", {}).setdefault("gate_s", {})
            spent[minion] = round(spent.get(minion, 0.0) + self.salt.monotonic() - started, 4)

    def _health_gate(self, minion):
        view = self.view
        held, last_ask, allowed = None, None, self.cluster_states()
        asked_about = set()  # the claims made on the bus (an event's "active", a frontend's state) asked about
        started, last_cluster_ask = self.salt.monotonic(), None
        # What reached the bus since the last node landed counts (a member's beacon said it went down meanwhile).
        while (event := self.salt.get_event(wait=0)) is not None:
            self.gates.observe(*event)
        while True:
            now = self.salt.time()
            verdict = view.verdict(now, allowed=allowed, disrupting=minion)
            if verdict["verdict"] == health.GO:
                if held is not None:
                    self.say(f"{minion}: every member of the cluster is active again; going on")
                    self.record.setdefault("health", {})["held"] = None
                view.begin(minion, now)
                return True
            evidence = {k: verdict[k] for k in ("who", "why", "since", "waited", "health_wait", "problems")}
            if view.frontend is not None:
                evidence["cluster"] = {k: view.cluster[k] for k in ("state", "node", "seq", "since")}
            if verdict["verdict"] == health.HALT:
                self.record["health"] = dict(
                    self.record.get("health") or {}, held=None, halted=dict(evidence, minion=minion)
                )
                self.halt(
                    f"cluster health: {verdict['why']} (in the way: {', '.join(verdict['who'])}; held "
                    f"{verdict['waited']} s, health_wait {verdict['health_wait']} s); {minion} was not touched"
                )
                return False
            # Said once per change of who is in the way (and of the state the frontend reports); not while the
            # only thing in the way is a claim heard on the bus, which a direct look (asked below) confirms.
            claims_only = all(problem.get("unconfirmed") for problem in verdict["problems"])
            if not claims_only and (verdict["who"], evidence.get("cluster", {}).get("state")) != held:
                held = (verdict["who"], evidence.get("cluster", {}).get("state"))
                self.say(f"{minion}: held: {verdict['why']}; waiting up to {verdict['health_wait']} s")
                self.record.setdefault("health", {})["held"] = dict(evidence, minion=minion)
                self.save()
                self.fire("held", dict(evidence, minion=minion))
            if self.rollouts.abort_requested(self.record["id"]):
                return False
            cluster = any(problem["what"] == "cluster" for problem in verdict["problems"])
            # A claim heard on the bus only waits for a direct look: asked at once, not at the next round.
            claims = {(p["who"], p.get("at")) for p in verdict["problems"] if p.get("unconfirmed")} - asked_about
            clock = self.salt.monotonic()
            polling = cluster and clock - started < CLUSTER_POLL_FOR  # the frontend's file read often
            if (verdict["ask"] or cluster) and (last_ask is None or claims or clock - last_ask >= HEALTH_ASK):
                asked_about |= claims
                self.ask_members(verdict["ask"])
                if cluster:
                    self.ask_cluster()
                    last_cluster_ask = clock
                last_ask = clock
            elif polling and (last_cluster_ask is None or clock - last_cluster_ask >= CLUSTER_POLL):
                self.ask_cluster()
                last_cluster_ask = clock
            wait = min(1.0, verdict["health_wait"] - verdict["waited"])
            if polling and last_cluster_ask is not None:
                wait = min(wait, last_cluster_ask + CLUSTER_POLL - clock)
            event = self.salt.get_event(wait=max(0.01, wait))
            if event:
                self.gates.observe(*event)

    def resume_view(self, skip=()):
        """After a resume: the view rebuilt, every member looked at again (the node in flight is spared). A node
        the operator gave up on (``skip``, now or at an earlier resume) is no longer a member: it may stay down."""
        record = self.record
        health_record = record.setdefault("health", {})
        left_out = sorted(set(health_record.get("left_out") or []) | set(skip or []))
        health_record["left_out"] = left_out
        self.new_view(sorted(set(record["nodes"]) - set(left_out)))
        self.look_at(list(self.view.members))
        flying = plan_lib.in_flight(record)
        if flying:
            self.view.begin(flying[0], self.salt.time())
        if self.view.frontend is not None:
            problem = self.look_at_cluster()  # after begin: a report from before the flight is not fresh
            if problem:
                self.say(f"the frontend {self.view.frontend}'s cluster state: {problem}; the gate waits for a report")
