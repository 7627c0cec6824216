"""The wire protocol of this extension: every event tag, the gate token and the event payloads, in one place.

Who talks to whom:

- the ``rolling`` runner announces a rollout on the master bus (:func:`rolling_tag`, ``expressware/rolling/...``)
  and says a refusal there (:data:`ROLLING_REFUSED`);
- the ``expressware.installed`` state tells the master where a node is (:data:`NODE_PHASE`, :func:`phase_event`);
  a job the runner prepared ahead of its turn waits on its minion's bus for :data:`GATE_GO` naming its gate, or
  :data:`GATE_CANCEL` listing it (:func:`go_event`, :func:`cancel_event`);
- ``expressware.wait_active`` announces the outcome (:data:`NODE_ACTIVE`/:data:`NODE_INACTIVE`, :func:`node_event`);
- the ``expressware`` beacon's events reach the master as ``salt/beacon/<minion>/expressware/<state>``
  (:func:`beacon_tag`, :func:`beacon_event`);
- a request for a rollout comes as :data:`UPDATE_REQUEST` (the reactor).

Plain Python: no Salt, no I/O. What a minion sends is untrusted: the helpers that read an event
(:func:`node_of`, :func:`phase_of`, :func:`gate_of`) check its shape and never raise.
"""

import re
import secrets

#: Prefix of the rolling runner's events: ``expressware/rolling/<rollout id>/<what>``.
ROLLING = "expressware/rolling"
#: ``rolling.update`` refused to start (bad input, a failed pre-flight, a busy cluster).
ROLLING_REFUSED = f"{ROLLING}/refused"
#: A request for a rollout (the reactor's ``salt/reactor/rolling_update.sls``).
UPDATE_REQUEST = "expressware/update/request"

#: A node's state run reports a step (master bus, ``event.send``: Salt adds the verified minion ``id``).
NODE_PHASE = "expressware/node/phase"
#: ``expressware.wait_active``'s outcome (master bus).
NODE_ACTIVE = "expressware/node/active"
NODE_INACTIVE = "expressware/node/inactive"

#: Events on a minion's own bus that release or cancel a prepared job (the state's ``gate``).
GATE = "expressware/gate/"
GATE_GO = GATE + "go"
GATE_CANCEL = GATE + "cancel"

#: The phase a prepared job announces once it waits at its gate (everything checked, nothing changed).
READY = "ready"

#: What the beacon's event is named after (Salt prefixes ``salt/beacon/<minion id>/``).
BEACON = "expressware"
BEACON_ACTIVE = "active"
BEACON_INACTIVE = "inactive"

_GATE_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")


# -- tags ----------------------------------------------------------------------


def rolling_tag(rollout_id, suffix):
    """``expressware/rolling/<rollout id>/<suffix>`` (``start``, ``node/<minion>/done``, ``halted``, ...)."""
    return f"{ROLLING}/{rollout_id}/{suffix}"


def beacon_tag(minion, state):
    """The tag the master sees for the beacon's event of ``state`` (``active``/``inactive``) on ``minion``."""
    return f"salt/beacon/{minion}/{BEACON}/{state}"


def job_return_tag(jid, minion):
    """Salt's tag of ``minion``'s return of job ``jid``."""
    return f"salt/job/{jid}/ret/{minion}"


def minion_start_tag(minion):
    """Salt's tag of a (re)started ``minion``."""
    return f"salt/minion/{minion}/start"


# -- the gate ------------------------------------------------------------------


def new_gate(rollout_id):
    """A fresh gate for a job prepared by rollout ``rollout_id``: ``<rollout id>:<token>``."""
    return f"{rollout_id}:{secrets.token_hex(4)}"


def gate_rollout(gate):
    """The rollout id part of ``gate`` (``<rollout id>:<token>``, made by :func:`new_gate`),
    or None when it is not such a gate (the id itself is checked where it names a file)."""
    if not isinstance(gate, str):
        return None
    rollout_id, _, token = gate.rpartition(":")
    return rollout_id if rollout_id and token.isascii() and token.isalnum() else None


def valid_gate(gate):
    """May ``gate`` be given to the state (a token of letters, digits, '.', '_', ':' or '-')?"""
    return isinstance(gate, str) and bool(_GATE_TOKEN.match(gate))


# -- payloads ------------------------------------------------------------------


def phase_event(phase, version, gate=None):
    """The data of :data:`NODE_PHASE`; ``gate`` for a prepared job's ``ready``."""
    data = {"phase": phase, "version": version}
    if gate is not None:
        data["gate"] = gate
    return data


def node_event(state):
    """The data of :data:`NODE_ACTIVE`/:data:`NODE_INACTIVE`: the node's own look at itself."""
    return {"node_state": state}


def node_event_tag(state):
    return NODE_ACTIVE if state.get("active") else NODE_INACTIVE


def beacon_event(state, previous):
    """One beacon event (Salt makes its tag :func:`beacon_tag`)."""
    return {"tag": state["state"], "node_state": state, "previous": previous}


def go_event(gate):
    """The data of :data:`GATE_GO` that releases the job waiting at ``gate``."""
    return {"gate": gate}


def cancel_event(gates, reason):
    """The data of :data:`GATE_CANCEL` for the jobs waiting at ``gates``."""
    return {"gates": list(gates), "reason": reason}


def refusal_event(cluster, version, reason, problems=None, holder=None):
    """The data of :data:`ROLLING_REFUSED`."""
    data = {"cluster": cluster, "version": str(version), "reason": reason}
    if problems is not None:
        data["problems"] = problems
    if holder is not None:
        data["holder"] = holder
    return data


# -- reading events (untrusted) ------------------------------------------------


def node_of(data):
    """The minion id Salt stamped on a minion's event (``event.send``), or None."""
    minion = data.get("id") if isinstance(data, dict) else None
    return minion if isinstance(minion, str) else None


def _inner(data):
    inner = data.get("data") if isinstance(data, dict) else None
    return inner if isinstance(inner, dict) else {}


def phase_of(data):
    """The phase a :data:`NODE_PHASE` event reports, or None."""
    phase = _inner(data).get("phase")
    return phase if isinstance(phase, str) else None


def gate_of(data):
    """The gate a :data:`NODE_PHASE` event names (a prepared job's ``ready``), or None."""
    return _inner(data).get("gate")


def reported_state(data):
    """The node state a :data:`NODE_ACTIVE` event carries, or None when there is none of the right shape
    (``expressware.node_state``'s: then the node is looked at directly)."""
    state = _inner(data).get("node_state")
    if (
        isinstance(state, dict)
        and isinstance(state.get("state"), str)
        and isinstance(state.get("active"), bool)
        and all(isinstance(state.get(key), (str, type(None))) for key in ("installed", "running"))
        and isinstance(state.get("reasons"), list)
    ):
        return state
    return None


def is_go(tag, data, gate):
    return tag == GATE_GO and isinstance(data, dict) and data.get("gate") == gate


def is_cancel(tag, data, gate):
    return tag == GATE_CANCEL and isinstance(data, dict) and gate in (data.get("gates") or [])


def job_error(data):
    """The error of a finished ``state.single`` job's return event, None when it succeeded."""
    ret = data.get("return") if isinstance(data, dict) else None
    if isinstance(ret, dict) and ret and all(isinstance(v, dict) for v in ret.values()):
        failed = [v.get("comment", "") for v in ret.values() if v.get("result") is not True]
        return "; ".join(failed) or None
    return f"the state run did not complete: {ret}"
