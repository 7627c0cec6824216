"""The cluster health gate as plain data: may the next node be disrupted?

No Salt, no I/O, no clock of its own (every time is passed in, as epoch seconds of
the master's clock). The ``rolling`` runner keeps one :class:`ClusterView` per
rollout, feeds it what it reads on the master's event bus and what the members
answer when asked, and asks :meth:`ClusterView.verdict` before every disruption;
the lease runner can keep one in the master cache (:meth:`ClusterView.to_dict`)
and refuse a lease while the view shows a member down.

What feeds the view, and who may say it:

- ``salt/beacon/<id>/expressware/active|inactive`` (the ``expressware`` beacon):
  about ``<id>`` only, and only when the data's ``id`` is ``<id>`` too.
- ``expressware/node/active|inactive`` (``expressware.wait_active``, sent with
  ``event.send``): about the ``id`` in its data.
- direct answers of ``expressware.node_state`` (:meth:`ClusterView.answer`), the
  job return of the member itself.
- ``expressware/cluster/state`` from the Cluster Management Node (frontend), sent
  by the Network Manager's notification script: ``{"state", "node", "seq", "time"}``;
  only from the configured frontend. ``seq`` (the script's counter) orders reports
  that overtake each other (two runs of the script at once).
- direct reads of the frontend's last report (:meth:`ClusterView.cluster_answer`),
  the script's state file.

Nothing on the bus proves its sender: ``event.send`` carries the minion's verified
``id``, but any minion can fire the same tag with the batched form of a minion
event (``event.fire_master`` with ``preload={"events": [...]}``), whose data it
writes itself, ``id`` included; and the master does not check a beacon's tag
against its sender. So an event's *active* is taken as *unconfirmed*: it ends no
hold until a direct ``expressware.node_state`` answer confirms it; and a frontend's
report in an allowed state counts once a direct read of its state file says the
same. One minion cannot make the gate let a node be disrupted while another member
is down by saying that member is back. An event's *inactive* (or a state not
allowed) counts at once: a false alarm only makes the rollout wait, and the gate
asks directly.

A member is judged by its latest word: a report older than what the view already
has (``at`` before the last one's) is stale and ignored, and so is an answer asked
before the last event arrived. Every member but the node in flight (deliberately
down, :meth:`ClusterView.begin`) and the node about to be disrupted must be
*active*, confirmed; with a frontend, the Network Manager's state must be one the
operator allows (default ``UP``) and, after a flight, reported after that flight
began (the Network Manager saw the node go and come back).
"""

import copy
import datetime

ACTIVE, INACTIVE, UNKNOWN = "active", "inactive", "unknown"
#: The Network Manager's externally visible states (facts file §4.2).
CLUSTER_STATES = ("UP", "REDUCED", "DEGRADED", "FAILED", "UNSTABLE")
DEFAULT_ALLOWED = ("UP",)
#: Seconds a rollout holds for a member to come back before it halts.
DEFAULT_HEALTH_WAIT = 300
GO, HOLD, HALT = "go", "hold", "halt"

TAG_NODE_ACTIVE = "expressware/node/active"
TAG_NODE_INACTIVE = "expressware/node/inactive"
TAG_CLUSTER_STATE = "expressware/cluster/state"
_BEACON_PREFIX = "salt/beacon/"
_BEACON_STATES = {"/expressware/active": ACTIVE, "/expressware/inactive": INACTIVE}

FORMAT = 1


class HealthError(ValueError):
    """Bad input: a member list, an allowed state, a health_wait that makes no sense."""


def cluster_members(targeted, extra=()):
    """The members of a cluster: the targeted minions plus the ``extra`` ones the
    operator names (``cluster_members``), sorted, each once."""
    members = set()
    for name in list(targeted or []) + list(extra or []):
        if not isinstance(name, str) or not name or name != name.strip():
            raise HealthError(f"a cluster member must be a minion id, not {name!r}")
        members.add(name)
    if not members:
        raise HealthError("a cluster has at least one member")
    return sorted(members)


def allowed_states(value=None):
    """The Network Manager states under which a node may be disrupted, validated:
    a list (or a comma-separated text) of :data:`CLUSTER_STATES`; default ``UP``."""
    if value is None:
        return DEFAULT_ALLOWED
    if isinstance(value, str):
        value = [part for part in value.replace(" ", "").split(",") if part]
    if not isinstance(value, (list, tuple)) or not value:
        raise HealthError(f"allowed cluster states must be a list of {', '.join(CLUSTER_STATES)}, not {value!r}")
    states = []
    for state in value:
        if not isinstance(state, str) or state.upper() not in CLUSTER_STATES:
            raise HealthError(f"unknown cluster state {state!r} (known: {', '.join(CLUSTER_STATES)})")
        states.append(state.upper())
    return tuple(dict.fromkeys(states))


def check_health_wait(value):
    """``health_wait`` validated: seconds >= 0 (0: halt at once when a member is down)."""
    if isinstance(value, bool):
        raise HealthError(f"health_wait must be a number of seconds, not {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise HealthError(f"health_wait must be a number of seconds, not {value!r}") from None
    if not 0 <= seconds <= 7 * 86400:
        raise HealthError(f"health_wait must be between 0 and 604800 seconds, not {value!r}")
    return seconds


def cluster_report(payload):
    """A frontend's cluster-state report (the event's data, or the notification
    script's state file) validated: ``{"state", "node", "seq", "time"}``, else
    :class:`HealthError`. ``node`` (the node the change concerns), ``seq`` and
    ``time`` may be missing (None)."""
    if not isinstance(payload, dict):
        raise HealthError(f"a cluster-state report is a mapping, not {payload!r}")
    state = payload.get("state")
    if not isinstance(state, str) or state not in CLUSTER_STATES:
        raise HealthError(f"unknown cluster state {state!r} (known: {', '.join(CLUSTER_STATES)})")
    node = payload.get("node") or None
    if node is not None and not isinstance(node, str):
        raise HealthError(f"the node of a cluster-state report is a name, not {node!r}")
    seq = payload.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
        raise HealthError(f"the seq of a cluster-state report is a counter, not {seq!r}")
    when = payload.get("time")
    if when is not None and (isinstance(when, bool) or not isinstance(when, (int, float))):
        raise HealthError(f"the time of a cluster-state report is epoch seconds, not {when!r}")
    return {"state": state, "node": node, "seq": seq, "time": when}


def stamp_time(data, default):
    """When the master fired an event: its ``_stamp`` (ISO time, UTC) as epoch
    seconds, else ``default`` (the time it was read). Events are ordered by it."""
    stamp = data.get("_stamp") if isinstance(data, dict) else None
    if isinstance(stamp, str):
        try:
            parsed = datetime.datetime.fromisoformat(stamp)
        except ValueError:
            return default
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        return parsed.timestamp()
    return default


def _newer(report, known):
    """Is ``report`` newer than ``known`` by the frontend's own order? Its ``time``
    (the frontend's clock, whole seconds) first, then its ``seq`` (which restarts
    when the script's state file is lost); None when neither tells."""
    if report["time"] is not None and known["time"] is not None and int(report["time"]) != int(known["time"]):
        return int(report["time"]) > int(known["time"])
    if report["seq"] is not None and known["seq"] is not None:
        return report["seq"] > known["seq"]
    return None


def _reasons(node_state):
    reasons = node_state.get("reasons") if isinstance(node_state, dict) else None
    return [str(r) for r in reasons] if isinstance(reasons, list) else []


class ClusterView:
    """What the master knows of a cluster's health, and the gate's verdict on it.

    ``members``: every Cluster Node of the cluster (targeted nodes and the extra
    ``cluster_members``); ``frontend``: the minion id of the Cluster Management Node
    whose Network Manager reports the cluster state, or None (no vendor gate);
    ``health_wait``: seconds to hold for a member (or the cluster state) to come
    back before the verdict is *halt*; ``cluster_after_flight``: after a node's
    flight, the frontend must have reported since the flight began (its word from
    before the flight predates the node's outage)."""

    def __init__(self, members, frontend=None, health_wait=DEFAULT_HEALTH_WAIT, cluster_after_flight=True):
        self.members = tuple(cluster_members(members))
        if frontend is not None and (not isinstance(frontend, str) or not frontend):
            raise HealthError(f"frontend must be a minion id, not {frontend!r}")
        self.frontend = frontend
        self.health_wait = check_health_wait(health_wait)
        self.cluster_after_flight = bool(cluster_after_flight)
        self.nodes = {
            m: {
                "state": UNKNOWN,
                "confirmed": False,
                "at": None,
                "since": None,
                "source": None,
                "reasons": ["not heard from yet"],
            }
            for m in self.members
        }
        self.cluster = {
            "state": None,
            "node": None,
            "seq": None,
            "time": None,
            "at": None,
            "since": None,
            "source": None,
            "confirmed": False,  # read from the frontend directly, not only said on the bus
        }
        self.flight = None  # {"minion", "since"}: the node deliberately down
        self.fresh_since = None  # the frontend must report at or after this (the last flight's start)
        self.hold_started = None

    # -- the rollout's own disruptions ---------------------------------------

    def begin(self, minion, now):
        """``minion`` is being disrupted on purpose (its update began): it does not
        count as down until :meth:`landed`."""
        if minion not in self.nodes:
            raise HealthError(f"{minion} is not a member of the cluster ({', '.join(self.members)})")
        if self.flight is not None and self.flight["minion"] != minion:
            raise HealthError(f"{self.flight['minion']} is in flight; {minion} cannot be disrupted as well")
        if self.flight is not None:  # the gate passed again for the same node (its job was not ready at once)
            self.hold_started = None
            return
        # What the frontend had to report before this flight: a gate passed again for this node asks no more.
        self.flight = {"minion": minion, "since": now, "fresh_before": self.fresh_since}
        self.fresh_since = now
        self.hold_started = None

    def landed(self, minion, now, node_state=None):
        """``minion``'s update ended with the node active (the runner saw it, e.g. its
        own ``expressware/node/active``): from now on it is a member like any other,
        and its going inactive again is a member down."""
        if self.flight is None or self.flight["minion"] != minion:
            raise HealthError(f"{minion} is not in flight")
        self.flight = None
        self._observe(minion, ACTIVE, now, "landed", True, _reasons(node_state))

    # -- what is heard -------------------------------------------------------

    def event(self, tag, data, now):
        """Take one event from the master bus into account; ``now``: when it was fired
        (:func:`stamp_time`). Returns ``(taken, note)``: whether it changed or confirmed
        the view, and why not (not a health event, a sender that may not say it, a
        stale report)."""
        if not isinstance(tag, str) or not isinstance(data, dict):
            return False, "not an event"
        if tag.startswith(_BEACON_PREFIX):
            for suffix, state in _BEACON_STATES.items():
                if tag.endswith(suffix):
                    minion = tag[len(_BEACON_PREFIX) : -len(suffix)]
                    if data.get("id") != minion:
                        return False, f"beacon event about {minion!r} carries id {data.get('id')!r}"
                    return self._heard(minion, state, data.get("node_state"), now, "beacon", state == INACTIVE)
            return False, "not a health event"
        if tag in (TAG_NODE_ACTIVE, TAG_NODE_INACTIVE):
            payload = data.get("data") if isinstance(data.get("data"), dict) else {}
            state = ACTIVE if tag == TAG_NODE_ACTIVE else INACTIVE
            # Its active, like a beacon's, until a direct look confirms it: the bus does not prove who sent it.
            return self._heard(data.get("id"), state, payload.get("node_state"), now, "node event", state == INACTIVE)
        if tag == TAG_CLUSTER_STATE:
            if self.frontend is None:
                return False, "no frontend is configured"
            if data.get("id") != self.frontend:
                return False, f"cluster state from {data.get('id')!r}, not from the frontend {self.frontend}"
            try:
                report = cluster_report(data.get("data"))
            except HealthError as exc:
                return False, str(exc)
            return self._cluster_report(report, now, "event")
        return False, "not a health event"

    def answer(self, minion, node_state, asked):
        """``minion``'s answer to a direct ``expressware.node_state``, asked at ``asked``
        (the answer is as old as the question: an event that arrived meanwhile is newer).
        No answer (None, False, an error text) makes the member unknown."""
        if minion not in self.nodes:
            return False, f"{minion!r} is not a member"
        if not isinstance(node_state, dict) or not isinstance(node_state.get("active"), bool):
            reason = "did not answer" if node_state in (None, False) else f"no node state: {node_state}"
            return self._observe(minion, UNKNOWN, asked, "answer", True, [reason])
        state = ACTIVE if node_state["active"] else INACTIVE
        return self._observe(minion, state, asked, "answer", True, _reasons(node_state))

    def cluster_answer(self, report, asked):
        """The frontend's last report read directly (the notification script's state
        file), read at ``asked``. The same report as the known one confirms it. Otherwise
        it counts when newer than the known report (by its ``time``, then ``seq``): the
        file says what the Network Manager last notified, however long ago. A known
        report that came as an event only (the bus does not prove its sender) gives way
        to the file's when the file was read after that event arrived."""
        if self.frontend is None:
            return False, "no frontend is configured"
        try:
            report = cluster_report(report)
        except HealthError as exc:
            return False, str(exc)
        known = self.cluster
        if known["state"] is not None:
            if all(report[key] == known[key] for key in ("state", "node", "seq", "time")):
                known["confirmed"] = True
                return True, None
            said_only = not known.get("confirmed") and asked >= known["at"]
            if not said_only and not _newer(report, known):
                return False, "no newer report than the one known"
            if said_only:
                return self._cluster_report(report, asked, "answer", replace=True)
        if known["state"] is None and self.fresh_since is not None:
            # Nothing says when the Network Manager notified this: not after the flight began.
            asked = min(asked, self.fresh_since - 1e-6)
        return self._cluster_report(report, asked, "answer")

    def _heard(self, minion, state, node_state, now, source, confirmed):
        if minion not in self.nodes:
            return False, f"{minion!r} is not a member"
        if isinstance(node_state, dict) and isinstance(node_state.get("active"), bool):
            if node_state["active"] != (state == ACTIVE):
                return False, f"{source} says {state} but carries a node state that says otherwise"
        return self._observe(minion, state, now, source, confirmed, _reasons(node_state))

    def _observe(self, minion, state, at, source, confirmed, reasons):
        node = self.nodes[minion]
        if node["at"] is not None and at < node["at"]:
            return False, f"stale: {minion} reported at {node['at']}, this is from {at}"
        if state != node["state"]:
            node["since"] = at
        node.update(state=state, confirmed=confirmed or state != ACTIVE, at=at, source=source, reasons=reasons)
        return True, None

    def _cluster_report(self, report, at, source, replace=False):
        """Take ``report`` (from an ``event`` or an ``answer``); ``replace``: whatever its order against the known
        one (a report said on the bus only, which the frontend's own file contradicts)."""
        cluster = self.cluster
        if cluster["state"] is not None and not replace:
            newer = _newer(report, cluster)
            if newer is False or (newer is None and at < cluster["at"]):
                return False, (
                    f"stale: cluster state {report['state']} (#{report['seq']}, {report['time']}) "
                    f"is not newer than {cluster['state']} (#{cluster['seq']}, {cluster['time']})"
                )
        if report["state"] != cluster["state"]:
            cluster["since"] = at
        cluster.update(report, at=at, source=source, confirmed=source == "answer")
        return True, None

    # -- the gate --------------------------------------------------------------

    def problems(self, allowed=DEFAULT_ALLOWED, disrupting=None):
        """Why a node may not be disrupted now, one entry per cause (empty: it may)."""
        allowed = allowed_states(allowed)
        found = []
        if self.flight is not None and self.flight["minion"] != disrupting:
            found.append(
                {
                    "who": self.flight["minion"],
                    "what": "in flight",
                    "since": self.flight["since"],
                    "why": f"{self.flight['minion']} is being updated",
                }
            )
        spared = {disrupting} | ({self.flight["minion"]} if self.flight else set())
        for minion in self.members:
            node = self.nodes[minion]
            if minion in spared or (node["state"] == ACTIVE and node["confirmed"]):
                continue
            if node["state"] == ACTIVE:
                what, why = (
                    "unconfirmed",
                    f"{minion} is active by an event on the bus only ({node['source']}); a direct look confirms it",
                )
            elif node["state"] == INACTIVE:
                what, why = "inactive", f"{minion} is inactive"
            else:
                what, why = "unknown", f"{minion}'s state is unknown"
            if node["reasons"]:
                why += " (" + "; ".join(node["reasons"]) + ")"
            found.append(
                {
                    "who": minion,
                    "what": what,
                    "since": node["since"],
                    "at": node["at"],
                    "source": node["source"],
                    "unconfirmed": what == "unconfirmed",
                    "why": why,
                    "reasons": list(node["reasons"]),
                }
            )
        if self.frontend is not None:
            cluster = self.cluster
            why = None
            fresh_since = self.fresh_since
            if self.flight is not None and self.flight["minion"] == disrupting:
                fresh_since = self.flight.get("fresh_before")
            if cluster["state"] is None:
                why = f"the frontend {self.frontend} has not reported the cluster state"
            elif self.cluster_after_flight and fresh_since is not None and cluster["at"] < fresh_since:
                why = (
                    f"the frontend {self.frontend} has not reported the cluster state since the last node "
                    f"was disrupted (last: {cluster['state']})"
                )
            elif cluster["state"] not in allowed:
                why = f"the cluster is {cluster['state']} (allowed: {', '.join(allowed)})"
                if cluster["node"]:
                    why += f", reported about {cluster['node']}"
            elif not cluster.get("confirmed"):
                # Nothing on the bus proves its sender: a minion can fire the frontend's event with any state.
                why = (
                    f"the cluster is {cluster['state']} by an event on the bus only; a direct read of the "
                    f"frontend {self.frontend}'s last report confirms it"
                )
            if why:
                found.append(
                    {
                        "who": self.frontend,
                        "what": "cluster",
                        "state": cluster["state"],
                        "since": cluster["since"],
                        "at": cluster["at"],
                        "source": cluster["source"],
                        "unconfirmed": cluster["state"] in allowed and not cluster.get("confirmed"),
                        "why": why,
                    }
                )
        return found

    def verdict(self, now, allowed=DEFAULT_ALLOWED, disrupting=None):
        """May ``disrupting`` (the next node; None: any) be disrupted at ``now``?

        ``{"verdict": "go"}``; or ``"hold"`` with ``who`` (the members, or the
        frontend, in the way), ``why``, ``since`` (when this hold began: the first
        verdict that was not *go*), ``waited``, ``problems`` and ``ask`` (members to
        look at directly: a down member has no beacon tick to say it is back, an
        unconfirmed one needs a direct look); or ``"halt"`` with the same evidence
        once the hold has lasted ``health_wait`` seconds. A *go* ends the hold."""
        found = self.problems(allowed, disrupting)
        if not found:
            self.hold_started = None
            return {"verdict": GO, "who": [], "why": None, "since": None, "waited": 0.0, "problems": [], "ask": []}
        if self.hold_started is None:
            self.hold_started = now
        waited = max(0.0, now - self.hold_started)
        return {
            "verdict": HALT if waited >= self.health_wait else HOLD,
            "who": list(dict.fromkeys(p["who"] for p in found)),
            "why": "; ".join(p["why"] for p in found),
            "since": self.hold_started,
            "waited": round(waited, 3),
            "health_wait": self.health_wait,
            "problems": found,
            "ask": [p["who"] for p in found if p["what"] in ("inactive", "unknown", "unconfirmed")],
        }

    def down(self):
        """Members the view shows not active (the node in flight left out): what the
        lease runner refuses a lease for."""
        spared = {self.flight["minion"]} if self.flight else set()
        return [m for m in self.members if m not in spared and self.nodes[m]["state"] != ACTIVE]

    # -- persistence -----------------------------------------------------------

    def to_dict(self):
        """A JSON-serialisable copy (for the master cache)."""
        return copy.deepcopy(
            {
                "format": FORMAT,
                "members": list(self.members),
                "frontend": self.frontend,
                "health_wait": self.health_wait,
                "cluster_after_flight": self.cluster_after_flight,
                "nodes": self.nodes,
                "cluster": self.cluster,
                "flight": self.flight,
                "fresh_since": self.fresh_since,
                "hold_started": self.hold_started,
            }
        )

    @classmethod
    def from_dict(cls, saved):
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise HealthError("not a saved cluster view of format 1")
        view = cls(saved["members"], saved["frontend"], saved["health_wait"], saved["cluster_after_flight"])
        if set(saved["nodes"]) != set(view.members):
            raise HealthError("a saved cluster view whose nodes are not its members")
        view.nodes = copy.deepcopy(saved["nodes"])
        view.cluster = copy.deepcopy(saved["cluster"])
        view.flight = copy.deepcopy(saved["flight"])
        view.fresh_since, view.hold_started = saved["fresh_since"], saved["hold_started"]
        return view
