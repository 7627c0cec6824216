"""Figures from the simulator's journals (pure functions over journal entries; no Salt).

Definitions (also written into BENCHMARKS.md):

* a node's **first change**: its first ``app-stop`` event or ``dis_services stop`` command in the window;
* its **in-flight time**: first change -> its next ``active`` event (stop + install + link training +
  whatever the state does in between);
* a **build**: a ``sia --build-rpm`` command (rolling: once per group), or an ``sia --install-node`` without
  ``--use-rpms`` (the installer builds for itself first: the naive way);
* the **physical limit** of a run: the sum of the in-flight times plus the duration (``end - time``) of every
  ``--build-rpm`` command (an inline build is already inside its node's in-flight time);
* **handover**: node N's ``active`` event -> node N+1's first change, nodes in the order they were changed.
"""

import math
import statistics


def window(entries, start, end=None):
    """Entries whose time lies in [start, end] (end None: no upper bound)."""
    return [e for e in entries if e["time"] >= start and (end is None or e["time"] <= end)]


def is_sia(entry, option):
    return str(entry.get("command", "")).startswith("sia ") and option in entry["command"].split()


def builds_in(entries):
    """Builds in the entries: (kind, start, end) with kind ``build-rpm`` or ``inline``."""
    found = []
    for e in entries:
        if is_sia(e, "--build-rpm"):
            found.append(("build-rpm", e["time"], e.get("end", e["time"])))
        elif (
            is_sia(e, "--install-node")
            and not is_sia(e, "--use-rpms")
            and not any(part.startswith("--use-rpms=") for part in e["command"].split())
        ):
            found.append(("inline", e["time"], e.get("end", e["time"])))
    return found


def node_facts(name, entries):
    """One node's timeline in a window: first change, down, installed, active, applications started, SIA runs."""
    first_change = None
    for e in entries:
        if e.get("event") == "app-stop" or e.get("command") == "dis_services stop":
            first_change = e["time"]
            break

    def first(pred, after):
        for e in entries:
            if after is not None and e["time"] >= after and pred(e):
                return e["time"]
        return None

    down = first(lambda e: e.get("event") == "down", first_change)
    installed = first(lambda e: e.get("event") == "installed", first_change)
    active = first(lambda e: e.get("event") == "active", down if down is not None else first_change)
    app_start = first(lambda e: e.get("event") == "app-start", active)
    sia = [
        {"command": e["command"], "start": e["time"], "end": e.get("end", e["time"]), "exit": e.get("exit")}
        for e in entries
        if str(e.get("command", "")).startswith("sia ")
    ]
    return {
        "node": name,
        "first_change": first_change,
        "down": down,
        "installed": installed,
        "active": active,
        "app_start": app_start,
        "in_flight": (active - first_change) if (active is not None and first_change is not None) else None,
        "down_time": (active - down) if (active is not None and down is not None) else None,
        "sia": sia,
        "builds": builds_in(entries),
        "final_version": next((e.get("version") for e in reversed(entries) if e.get("event") == "active"), None),
    }


def max_down(nodes):
    """Most nodes down (``down`` -> ``active``) at the same moment; touching intervals do not overlap."""
    points = []
    for n in nodes:
        if n["down"] is None:
            continue
        end = n["active"] if n["active"] is not None else math.inf
        if end > n["down"]:
            points += [(n["down"], 1), (end, -1)]
    points.sort(key=lambda p: (p[0], p[1]))
    current = best = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list: an observed value, never interpolated."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def describe(values):
    if not values:
        return None
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values),
        "min": min(values),
        "mean": statistics.fmean(values),
    }


def analyse_run(journals, t_start, t_end):
    """Figures of one job from ``{node: journal entries}`` between ``t_start`` and ``t_end`` (epoch seconds).

    The upper bound is ``t_end`` plus a little: an ``active`` event is journaled with its computed time, which
    can be a moment before the job that observed it returned.
    """
    nodes = []
    for name, entries in sorted(journals.items()):
        nodes.append(node_facts(name, window(entries, t_start, t_end + 0.5)))
    changed = sorted((n for n in nodes if n["first_change"] is not None), key=lambda n: n["first_change"])
    builds = [b for n in nodes for b in n["builds"]]
    separate = [b for b in builds if b[0] == "build-rpm"]
    handovers = []
    for prev, nxt in zip(changed, changed[1:]):
        if prev["active"] is not None:
            handovers.append({"from": prev["node"], "to": nxt["node"], "seconds": nxt["first_change"] - prev["active"]})
    in_flight = [n["in_flight"] for n in changed if n["in_flight"] is not None]
    wall = t_end - t_start
    limit = sum(in_flight) + sum(end - start for _, start, end in separate)
    result = {
        "t_start": t_start,
        "t_end": t_end,
        "wall_s": wall,
        "nodes": nodes,
        "order": [n["node"] for n in changed],
        "nodes_changed": len(changed),
        "nodes_active_after": sum(1 for n in changed if n["active"] is not None),
        "builds": len(builds),
        "builds_separate": len(separate),
        "builds_inline": len(builds) - len(separate),
        "build_seconds": [end - start for _, start, end in builds],
        "physical_limit_s": limit,
        "ratio": (wall / limit) if limit else None,
        "handovers": handovers,
        "handover": describe([h["seconds"] for h in handovers]),
        "in_flight": describe(in_flight),
        "down_time": describe([n["down_time"] for n in changed if n["down_time"] is not None]),
        "max_nodes_down": max_down(nodes),
    }
    if changed:
        first = changed[0]["first_change"]
        last_active = max((n["active"] for n in changed if n["active"] is not None), default=None)
        result["breakdown"] = {
            "before the first node (start of the command, pre-flight, builds)": first - t_start,
            "of which builds (--build-rpm)": sum(end - start for _, start, end in separate),
            "nodes in flight (sum)": sum(in_flight),
            "handovers (sum)": sum(h["seconds"] for h in handovers),
            "after the last node is active (applications, job return, checks, exit)": (t_end - last_active)
            if last_active is not None
            else None,
        }
    return result


def handover_parts(figures, record):
    """Split each handover with the runner's own log (the rollout record, master clock = same machine):

    * ``state notices active``: node N ``active`` (journal) -> its ``app-start`` (the state's ``wait_active``
      poll saw it, fired the event, started the application);
    * ``job return + confirm``: -> the runner logs ``N: active on V`` (job return and the node's active event,
      with its own node state, received);
    * ``next node checks``: -> the runner logs ``N+1 (k/n): updating`` (record saved; a node that was not
      prepared is pinged first);
    * ``publish + state run-up``: -> node N+1's first change (its prepared job waits at its gate: the go-ahead
      is one ``event.fire`` publish, then the state stops the application).

    And, apart (it is within ``next node checks``), the cluster health gate's own time before node N+1: what the
    driver spent in its gate (the record's ``health.gate_s``), under ``gate`` per row and ``gate`` (percentiles).
    """
    if not record:
        return None
    done, begin = {}, {}
    for entry in record.get("log", []):
        message = entry["message"]
        name, _, rest = message.partition(":")
        if rest.strip().startswith("active on "):
            done.setdefault(name, entry["time"])
        head = message.split(" ", 1)
        if len(head) == 2 and head[1].startswith("(") and head[1].endswith("updating"):
            begin.setdefault(head[0], entry["time"])
    by_name = {n["node"]: n for n in figures["nodes"]}
    gate_s = (record.get("health") or {}).get("gate_s") or {}
    rows = []
    for h in figures["handovers"]:
        prev, nxt = by_name[h["from"]], by_name[h["to"]]
        points = [prev["active"], prev["app_start"], done.get(h["from"]), begin.get(h["to"]), nxt["first_change"]]
        if any(p is None for p in points):
            continue
        rows.append(
            {
                "from": h["from"],
                "to": h["to"],
                "state notices active": points[1] - points[0],
                "job return + confirm": points[2] - points[1],
                "next node checks": points[3] - points[2],
                "publish + state run-up": points[4] - points[3],
                "gate": gate_s.get(h["to"]),
            }
        )
    if not rows:
        return None
    keys = ["state notices active", "job return + confirm", "next node checks", "publish + state run-up"]
    gates = [r["gate"] for r in rows if r["gate"] is not None]
    return {
        "rows": rows,
        "mean": {k: statistics.fmean(r[k] for r in rows) for k in keys},
        "gate": describe(gates) if gates else None,
    }


def startup_parts(figures, record):
    """Split the time before the first node with the rollout record's log (same clock as the journals):

    command start -> record created (salt-run start-up, lease) -> ``planned ...`` (the pre-flight on every node) ->
    last ``built`` (clear old RPMs, ``--build-rpm``; the first node is prepared meanwhile) -> the first
    node's first change (its go-ahead). The staging to the other nodes (the builder's push to the master, then one
    publish to them) happens while the first node is down
    (reported apart: it is not before the first node any more).
    """
    if not record or not figures["order"]:
        return None
    built = [e["time"] for e in record.get("log", []) if e["message"].startswith("built ")]
    staging = [e["time"] for e in record.get("log", []) if e["message"].startswith("staging ")]
    staged = [e["time"] for e in record.get("log", []) if e["message"].startswith("staged the RPMs")]
    first = min(n["first_change"] for n in figures["nodes"] if n["first_change"] is not None)
    planned = [e["time"] for e in record.get("log", []) if e["message"].startswith("planned ")]
    created = record.get("created")
    if created is None or not built or not planned:
        return None
    builds = sum(
        end - start for kind, start, end in (b for n in figures["nodes"] for b in n["builds"]) if kind == "build-rpm"
    )
    parts = {
        "salt-run start-up, lease": created - figures["t_start"],
        "pre-flight (every node)": planned[0] - created,
        "builds incl. clearing old RPMs": max(built) - planned[0],
        "of which --build-rpm": builds,
        "first node: its go-ahead (prepared during the builds)": first - max(built),
    }
    if staging and staged:
        parts["(staging to the other nodes, while the first node is down)"] = max(staged) - min(staging)
    return parts
