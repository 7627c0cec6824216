"""The facts of a rollout, from its record, as plain data: its timeline and its figures.

Part of :mod:`expressware_report`, the front end the runner loads (it re-exports every public name of this module);
see its docstring for what the record holds and what the times are. Pure Python, no I/O.
"""

import math
import re

# What the log says (the messages of expressware_rollout's mark_* functions, and of the
# runner's progress where the record has no mark of its own: the start of a build and
# of a staging). Only minion ids are assumed to have no spaces.
_PHASE = re.compile(r"^(?P<minion>\S+): (?P<phase>stopping|installing|waiting)$")
_ACTIVE = re.compile(r"^(?P<minion>\S+): active on (?P<version>\S+)$")
_NODE_FAILED = re.compile(r"^halted: (?P<minion>\S+) failed: (?P<error>.*)$", re.S)
_BUILDING = re.compile(r"^building RPMs for (?P<group>.+) on (?P<builder>\S+) \(")
_BUILT = re.compile(r"^built (?P<count>\d+) RPM\(s\) for (?P<group>.+) on (?P<builder>\S+)$")
_STAGING = re.compile(r"^staging \d+ RPM\(s\) of (?P<group>.+) on \d+ node\(s\)$")
_STAGED = re.compile(r"^staged the RPMs of (?P<group>.+) on \d+ node\(s\)$")
_FRONTEND = re.compile(r"^frontend (?P<minion>\S+) updated")
# ``waiting: <reason>``: a wait for the maintenance window (logged like a pause; ``resumed`` ends it).
_HOLD = re.compile(r"^(?P<kind>paused|halted|waiting): (?P<reason>.*)$", re.S)


# ---------------------------------------------------------------------------
# The facts of a rollout, from its record
# ---------------------------------------------------------------------------


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100): an observed value, as in the benchmarks."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1] if ordered else None


#: Statuses in which a rollout still holds its cluster: with ``now``, its picture reaches to ``now``.
HOLDING = ("running", "paused", "halted")


def end_time(record, now=None):
    """When the rollout ended: the time it finished, else its last change, or ``now`` (when
    given) for a rollout that still holds its cluster (running, paused or halted)."""
    if record["status"] == "done":
        for entry in reversed(record.get("log") or []):
            if entry["message"] == "done":
                return entry["time"]
    last = record.get("updated") or record["created"]
    return max(last, now) if now is not None and record["status"] in HOLDING else last


def timeline(record, now=None):
    """What happened when, as plain data: ``{"t0", "end", "nodes", "builds", "stagings",
    "holds", "handovers", "frontend"}`` (Unix times; ``now``: see :func:`end_time`)."""
    t0, end = record["created"], end_time(record, now)
    attempts = {minion: [] for minion in record["nodes"]}
    open_attempt = {}
    builds, stagings, holds = {}, {}, []
    frontend_at = None
    for entry in record.get("log") or []:
        when, message = entry["time"], entry["message"]
        if (match := _PHASE.match(message)) and match["minion"] in attempts:
            minion = match["minion"]
            if minion not in open_attempt:
                open_attempt[minion] = {"start": when, "end": None, "phases": [], "outcome": "in flight", "error": None}
                attempts[minion].append(open_attempt[minion])
            open_attempt[minion]["phases"].append((match["phase"], when))
        elif (match := _ACTIVE.match(message)) and match["minion"] in open_attempt:
            open_attempt.pop(match["minion"]).update(end=when, outcome="active")
        elif (match := _NODE_FAILED.match(message)) and match["minion"] in open_attempt:
            open_attempt.pop(match["minion"]).update(end=when, outcome="failed", error=match["error"])
        elif match := _BUILDING.match(message):
            builds[match["group"]] = {
                "group": match["group"],
                "builder": match["builder"],
                "start": when,
                "end": None,
                "rpms": None,
            }
        elif match := _BUILT.match(message):
            build = builds.setdefault(
                match["group"], {"group": match["group"], "builder": match["builder"], "start": None}
            )
            build.update(end=when, rpms=int(match["count"]))
        elif match := _STAGING.match(message):
            stagings.setdefault(match["group"], {"group": match["group"], "start": when, "end": None})
        elif match := _STAGED.match(message):
            stagings.setdefault(match["group"], {"group": match["group"], "start": None})["end"] = when
        elif _FRONTEND.match(message):
            frontend_at = when
        held = bool(holds) and holds[-1]["end"] is None
        if (match := _HOLD.match(message)) and not held:
            # The runner repeats a hold in its progress; the first word of it counts.
            holds.append({"kind": match["kind"], "reason": match["reason"], "start": when, "end": None})
        elif record["status"] == "aborted" and message == record.get("reason") and not held:
            holds.append({"kind": "aborted", "reason": message, "start": when, "end": None})
        elif message == "resumed" and holds and holds[-1]["end"] is None:
            holds[-1]["end"] = when
    nodes = []
    for minion in list(record["order"]) + [m for m in record["nodes"] if m not in record["order"]]:
        node = record["nodes"][minion]
        tried = attempts[minion]
        if not tried and node.get("started") is not None:
            # The log no longer reaches back to it: the record's own times.
            outcome = node["phase"] if node["phase"] in ("active", "failed") else "in flight"
            tried = [
                {
                    "start": node["started"],
                    "end": node.get("finished"),
                    "phases": [("in flight", node["started"])],
                    "outcome": outcome,
                    "error": node.get("error"),
                }
            ]
        if tried and tried[-1]["outcome"] == "failed" and node.get("error"):
            tried[-1]["error"] = node["error"]  # the record's word is the whole one
        nodes.append(
            {
                "minion": minion,
                "phase": node["phase"],
                "before": node.get("before"),
                "after": node.get("after"),
                "error": node.get("error"),
                "note": node.get("note"),
                "group": node.get("group"),
                "attempts": tried,
                "in_flight": sum((a["end"] if a["end"] is not None else end) - a["start"] for a in tried)
                if tried
                else None,
            }
        )
    segments = sorted(((a["start"], a, n["minion"]) for n in nodes for a in n["attempts"]), key=lambda s: s[0])
    handovers = []
    for (_, prev, prev_minion), (start, _next, nxt_minion) in zip(segments, segments[1:]):
        held = any(prev["end"] is not None and prev["end"] <= h["start"] <= start for h in holds)
        if prev["outcome"] == "active" and prev["end"] <= start and not held:
            handovers.append({"from": prev_minion, "to": nxt_minion, "at": prev["end"], "seconds": start - prev["end"]})
    return {
        "t0": t0,
        "end": end,
        "nodes": nodes,
        "builds": list(builds.values()),
        "stagings": list(stagings.values()),
        "holds": holds,
        "handovers": handovers,
        "frontend": frontend_at,
    }


def _most_at_once(nodes, end):
    points = []
    for node in nodes:
        for attempt in node["attempts"]:
            points += [(attempt["start"], 1), (attempt["end"] if attempt["end"] is not None else end, -1)]
    current = best = 0
    for _, delta in sorted(points, key=lambda p: (p[0], p[1])):  # an end before a start at the same time
        current += delta
        best = max(best, current)
    return best


def figures(record, facts=None, now=None):
    """The numbers of a rollout (seconds, counts), for the table and for tests."""
    facts = facts or timeline(record, now)
    nodes = facts["nodes"]
    counts = {}
    for node in record["nodes"].values():
        counts[node["phase"]] = counts.get(node["phase"], 0) + 1
    done = [n["in_flight"] for n in nodes if n["phase"] == "active" and n["in_flight"] is not None]
    handovers = [h["seconds"] for h in facts["handovers"]]
    builds = [b["end"] - b["start"] for b in facts["builds"] if b.get("start") is not None and b.get("end") is not None]
    held = sum((h["end"] if h["end"] is not None else facts["end"]) - h["start"] for h in facts["holds"])
    return {
        "wall": facts["end"] - facts["t0"],
        "to_update": len(record["order"]),
        "updated": sum(1 for m in record["order"] if record["nodes"][m]["phase"] == "active"),
        "counts": counts,
        "in_flight": {n["minion"]: n["in_flight"] for n in nodes if n["in_flight"] is not None},
        "in_flight_p50": percentile(done, 50),
        "in_flight_max": max(done) if done else None,
        "handover_n": len(handovers),
        "handover_p50": percentile(handovers, 50),
        "handover_p95": percentile(handovers, 95),
        "handover_max": max(handovers) if handovers else None,
        "builds": len(record["groups"]),
        "built": sum(1 for g in record["groups"].values() if g["built"]),
        "build_seconds": builds,
        "held": held,
        "most_in_flight": _most_at_once(nodes, facts["end"]),
    }
