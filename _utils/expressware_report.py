"""A picture of a rollout: a self-contained HTML page from its record, and the rows of ``rolling.list``.

The page is one file a browser opens without a network: inline SVG and CSS, no
scripts, no fonts, images or style sheets from elsewhere. It shows one lane per node
(its time in flight, split into the phases it reported), the builds and the staging,
the handovers from one node to the next, the holds (a canary pause, a halt, an abort,
a maintenance window's wait) with their reasons, the failures with their errors, and
a table of the figures.

Everything comes from the record (:mod:`expressware_rollout`): the nodes' ``started``,
``finished`` and ``error``, and the timestamped ``log`` for what the nodes carry no
time for (each phase, the builds, the holds). The log keeps the last ``MAX_LOG``
entries: on a long rollout the oldest phases are gone and a node's lane falls back to
its ``started``..``finished``. The times are the master's: when the runner learned of a step (a
node's phase event may wait in its listener while it stages RPMs), not the node's clock.
Everything a minion sent (errors, versions, names) is escaped: it is untrusted text.
"""

import contextlib
import datetime
import html
import math
import os
import re
import tempfile

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


def _hold_colour(kind):
    """A hold's colour: its kind, but ``waiting`` (a window wait) is not the node phase of that name."""
    return COLOURS["window wait" if kind == "waiting" else kind]


COLOURS = {
    "stopping": "#ffb74d",  # applications and services stopping
    "installing": "#e53935",  # the installer runs: the node is down
    "waiting": "#8e24aa",  # waiting until the node is active (links training)
    "in flight": "#b0bec5",  # phases unknown (the log no longer has them)
    "active": "#2e7d32",
    "failed": "#b71c1c",
    "build": "#1e88e5",
    "staging": "#90caf9",
    "paused": "#fff3c4",
    "window wait": "#e1f5fe",  # a hold for the maintenance window (logged as "waiting: <reason>")
    "halted": "#ffcdd2",
    "aborted": "#e0e0e0",
    "handover": "#546e7a",
}


# ---------------------------------------------------------------------------
# The facts of a rollout, from its record
# ---------------------------------------------------------------------------


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100): an observed value, as in the benchmarks."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1] if ordered else None


#: Statuses in which a rollout still holds its cluster: with ``now``, its picture reaches to ``now``.
_HOLDING = ("running", "paused", "halted")


def end_time(record, now=None):
    """When the rollout ended: the time it finished, else its last change, or ``now`` (when
    given) for a rollout that still holds its cluster (running, paused or halted)."""
    if record["status"] == "done":
        for entry in reversed(record.get("log") or []):
            if entry["message"] == "done":
                return entry["time"]
    last = record.get("updated") or record["created"]
    return max(last, now) if now is not None and record["status"] in _HOLDING else last


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


# ---------------------------------------------------------------------------
# rolling.list
# ---------------------------------------------------------------------------


def rollout_list(records, tz=None, now=None):
    """The rows of ``rolling.list``, most recent first: id, cluster, version, status,
    started (ISO 8601 in ``tz``, default the master's local zone), duration in seconds
    (to its end; to ``now``, when given, for one that still holds its cluster), nodes
    updated of those to update."""
    rows = []
    for record in sorted(records, key=lambda r: r["created"], reverse=True):
        rows.append(
            {
                "rollout": record["id"],
                "cluster": record["cluster"],
                "version": record["version"],
                "status": record["status"],
                "started": _when(record["created"], tz).isoformat(timespec="seconds"),
                "duration": round(end_time(record, now) - record["created"], 1),
                "nodes": f"{sum(1 for m in record['order'] if record['nodes'][m]['phase'] == 'active')}"
                f"/{len(record['order'])}",
            }
        )
        for link in ("rollback_of", "rolled_back_by"):  # a rollback and the rollout it rolled back
            if record.get(link):
                rows[-1][link] = record[link]
    return rows


def _when(timestamp, tz=None):
    if tz is None:
        return datetime.datetime.fromtimestamp(timestamp).astimezone()
    return datetime.datetime.fromtimestamp(timestamp, tz)


# ---------------------------------------------------------------------------
# The picture
# ---------------------------------------------------------------------------


def duration(seconds):
    """``0.84 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 07 min``."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    if seconds < 2 * 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _e(text):
    return html.escape(str(text), quote=True)


def _short(text, limit):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _nice_step(span, width_px):
    for step in (0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400):
        if span / step * 70 <= width_px:
            return step
    return 86400 * math.ceil(span / 86400 / (width_px / 70))


def _tick_label(seconds):
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


LANE, GAP, LEFT, RIGHT, TOP = 20, 6, 170, 40, 44


def render_svg(record, facts=None, width=1100, standalone=False, now=None):
    """The timeline as SVG: a lane per node, a lane for builds and staging, the holds across all lanes."""
    facts = facts or timeline(record, now)
    t0, end = facts["t0"], facts["end"]
    span = max(end - t0, 1e-6)
    plot_w = width - LEFT - RIGHT
    x = lambda t: LEFT + plot_w * min(max(0.0, t - t0), span) / span  # noqa: E731
    rows = ["builds & staging"] + [n["minion"] for n in facts["nodes"]]
    if record.get("frontend"):
        rows.append("frontend")
    lanes_top = TOP
    lanes_bottom = lanes_top + len(rows) * (LANE + GAP)
    height = lanes_bottom + 64
    mid = lambda row: lanes_top + row * (LANE + GAP) + LANE / 2  # noqa: E731
    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    out = [
        f'<svg{ns} class="timeline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="timeline of rollout {_e(record["id"])}">'
    ]
    # Holds first: bands behind the lanes.
    for hold in facts["holds"]:
        x1, x2 = x(hold["start"]), x(hold["end"] if hold["end"] is not None else end)
        label = f"{hold['kind']}: {hold['reason']}" + ("" if hold["end"] is not None else " (still)")
        out.append(
            f'<rect class="hold" x="{x1:.1f}" y="{lanes_top - 6}" width="{max(2.0, x2 - x1):.1f}" '
            f'height="{lanes_bottom - lanes_top + 6}" fill="{_hold_colour(hold["kind"])}">'
            f"<title>{_e(label)}</title></rect>"
        )
        out.append(_label("hold-label", x1, x1, lanes_top - 10, width, label, 6.0))
    # Time axis.
    step = _nice_step(span, plot_w)
    tick = 0.0
    while tick <= span + 1e-9:
        xt = x(t0 + tick)
        out.append(f'<line x1="{xt:.1f}" y1="{lanes_top - 4}" x2="{xt:.1f}" y2="{lanes_bottom}" stroke="#e0e0e0"/>')
        out.append(
            f'<text class="tick" x="{xt:.1f}" y="{lanes_bottom + 14}" text-anchor="middle">{_tick_label(tick)}</text>'
        )
        tick += step
    for row, name in enumerate(rows):
        y = lanes_top + row * (LANE + GAP)
        out.append(
            f'<text class="lane" x="{LEFT - 8}" y="{y + LANE - 6}" text-anchor="end">'
            f"<title>{_e(name)}</title>{_e(_short(name, 24))}</text>"
        )
        out.append(f'<line x1="{LEFT}" y1="{mid(row):.1f}" x2="{LEFT + plot_w}" y2="{mid(row):.1f}" stroke="#f2f2f2"/>')
    # Builds and staging.
    for build in facts["builds"]:
        start = build["start"] if build.get("start") is not None else build["end"]
        stop = build["end"] if build.get("end") is not None else end
        text = f"build for {build['group']} on {build['builder']}" + (
            f" ({duration(stop - start)}, {build['rpms']} RPM(s))" if build.get("end") is not None else " (not done)"
        )
        out.append(_bar(x(start), x(stop), lanes_top + 1, LANE / 2 - 1, COLOURS["build"], text))
    for staging in facts["stagings"]:
        start = staging["start"] if staging.get("start") is not None else staging["end"]
        stop = staging["end"] if staging.get("end") is not None else end
        text = f"staging of {staging['group']}" + (
            f" ({duration(stop - start)})" if staging.get("end") is not None else " (not done)"
        )
        out.append(_bar(x(start), x(stop), lanes_top + LANE / 2 + 1, LANE / 2 - 1, COLOURS["staging"], text))
    # Nodes.
    for row, node in enumerate(facts["nodes"], start=1):
        y = lanes_top + row * (LANE + GAP)
        if not node["attempts"]:
            note = ("skipped: " + (node["note"] or "")) if node["phase"] == "skipped" else "not started"
            out.append(f'<text class="note" x="{LEFT + 4}" y="{y + LANE - 6}">{_e(note)}</text>')
            continue
        for attempt in node["attempts"]:
            stop = attempt["end"] if attempt["end"] is not None else end
            phases = attempt["phases"] + [(None, stop)]
            for (phase, start), (_, until) in zip(phases, phases[1:]):
                out.append(
                    _bar(
                        x(start),
                        x(until),
                        y + 3,
                        LANE - 6,
                        COLOURS.get(phase, COLOURS["in flight"]),
                        f"{node['minion']}: {phase} {duration(until - start)}",
                    )
                )
            summary = f"{node['minion']}: in flight {duration(stop - attempt['start'])}, {attempt['outcome']}"
            out.append(
                f'<rect class="attempt {attempt["outcome"].replace(" ", "-")}" x="{x(attempt["start"]):.1f}" '
                f'y="{y + 3}" width="{max(1.0, x(stop) - x(attempt["start"])):.1f}" height="{LANE - 6}" '
                f'fill="none"><title>{_e(summary)}</title></rect>'
            )
            if attempt["outcome"] == "active":
                out.append(
                    f'<circle cx="{x(stop):.1f}" cy="{y + LANE / 2}" r="4" fill="{COLOURS["active"]}">'
                    f"<title>{_e(node['minion'])}: active on {_e(node['after'])}</title></circle>"
                )
            elif attempt["outcome"] == "failed":
                xe = x(stop)
                out.append(
                    f'<path d="M{xe - 4:.1f},{y + 4} l8,{LANE - 8} M{xe + 4:.1f},{y + 4} l-8,{LANE - 8}" '
                    f'stroke="{COLOURS["failed"]}" stroke-width="2.5"/>'
                )
                out.append(
                    _label(
                        "failure",
                        x(attempt["start"]) - 4,
                        xe + 4,
                        y + LANE - 6,
                        width,
                        "failed: " + str(attempt["error"]),
                        6.8,
                        title=attempt["error"],
                    )
                )
    # Handovers: from a node's active to the next node's first step.
    row_of = {node["minion"]: row for row, node in enumerate(facts["nodes"], start=1)}
    for handover in facts["handovers"]:
        start = next(
            a["start"]
            for a in next(n for n in facts["nodes"] if n["minion"] == handover["to"])["attempts"]
            if a["start"] >= handover["at"]
        )
        out.append(
            f'<line class="handover" x1="{x(handover["at"]):.1f}" y1="{mid(row_of[handover["from"]]):.1f}" '
            f'x2="{x(start):.1f}" y2="{mid(row_of[handover["to"]]):.1f}" stroke="{COLOURS["handover"]}" '
            f'stroke-dasharray="3,2"><title>handover {_e(handover["from"])} → {_e(handover["to"])}: '
            f"{duration(handover['seconds'])}</title></line>"
        )
    if record.get("frontend"):
        row = len(rows) - 1
        y = lanes_top + row * (LANE + GAP)
        front = record["frontend"]
        if facts["frontend"] is not None:
            out.append(
                f'<circle cx="{x(facts["frontend"]):.1f}" cy="{y + LANE / 2}" r="4" fill="{COLOURS["active"]}">'
                f"<title>frontend {_e(front['minion'])} updated</title></circle>"
            )
        out.append(
            f'<text class="note" x="{LEFT + 4}" y="{y + LANE - 6}">{_e(front["minion"])}: {_e(front["phase"])}'
            + (f" ({_e(front['error'])})" if front.get("error") else "")
            + "</text>"
        )
    # Legend.
    ly, lx = lanes_bottom + 30, LEFT
    for key, label in (
        ("stopping", "stopping"),
        ("installing", "installing (down)"),
        ("waiting", "waiting until active"),
        ("build", "build"),
        ("staging", "staging"),
        ("paused", "paused"),
        ("window wait", "window wait"),
        ("halted", "halted"),
    ):
        out.append(
            f'<rect x="{lx}" y="{ly}" width="14" height="10" fill="{COLOURS[key]}" stroke="#9e9e9e" '
            'stroke-width="0.5"/>'
        )
        out.append(f'<text class="legend" x="{lx + 18}" y="{ly + 9}">{label}</text>')
        lx += 30 + 7 * len(label)
    out.append(
        f'<circle cx="{lx + 5}" cy="{ly + 5}" r="4" fill="{COLOURS["active"]}"/>'
        f'<text class="legend" x="{lx + 14}" y="{ly + 9}">active</text>'
    )
    lx += 62
    out.append(
        f'<line x1="{lx}" y1="{ly + 5}" x2="{lx + 18}" y2="{ly + 5}" stroke="{COLOURS["handover"]}" '
        f'stroke-dasharray="3,2"/><text class="legend" x="{lx + 22}" y="{ly + 9}">handover</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _label(css, left_end, right_start, y, width, text, char_px, title=None):
    """A text beside a mark: right of ``right_start`` when there is room for it (or more room
    than on the left), else ending at ``left_end``; shortened to the room, whole in its title."""
    right, left = width - 8 - right_start - 4, left_end - LEFT - 4
    fits_right = len(text) * char_px <= right or right >= left
    room = max(8, int((right if fits_right else left) / char_px))
    anchor = f'x="{right_start + 4:.1f}"' if fits_right else f'x="{left_end - 4:.1f}" text-anchor="end"'
    return (
        f'<text class="{css}" {anchor} y="{y}"><title>{_e(title if title is not None else text)}</title>'
        f"{_e(_short(text, room))}</text>"
    )


def _bar(x1, x2, y, h, colour, tooltip):
    return (
        f'<rect x="{x1:.1f}" y="{y:.1f}" width="{max(1.0, x2 - x1):.1f}" height="{h}" fill="{colour}">'
        f"<title>{_e(tooltip)}</title></rect>"
    )


_CSS = """
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; font-size: 14px; color: #212121; margin: 24px; }
h1 { font-size: 20px; margin: 0 0 6px; } h2 { font-size: 16px; margin: 22px 0 8px; }
.status { display: inline-block; padding: 3px 10px; border-radius: 4px; font-weight: bold; }
.status.done { background: #c8e6c9; } .status.running { background: #bbdefb; }
.status.paused { background: #fff3c4; } .status.halted { background: #ffcdd2; } .status.aborted { background: #e0e0e0; }
.meta { color: #555; margin: 6px 0 12px; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #ffebee; } .error { color: #b71c1c; }
svg.timeline { font-size: 11px; } svg .tick { fill: #666; } svg .note { fill: #757575; font-style: italic; }
svg .failure { fill: #b71c1c; font-weight: bold; } svg .hold-label { fill: #6d4c41; font-size: 10px; }
svg .attempt.failed { stroke: #b71c1c; stroke-width: 1.5; }
svg .attempt.in-flight { stroke: #ff6f00; stroke-dasharray: 4,2; }
pre { background: #fafafa; border: 1px solid #eee; padding: 8px; font-size: 12px; white-space: pre-wrap; }
"""


def render_html(record, tz=None, width=1100, now=None):
    """The whole page, as text (``tz``: the zone of the times shown, default the master's;
    ``now``: see :func:`end_time`)."""
    facts = timeline(record, now)
    figs = figures(record, facts)
    when = lambda t: _when(t, tz).strftime("%Y-%m-%d %H:%M:%S %Z")  # noqa: E731
    status = record["status"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Rollout {_e(record['id'])}: {_e(status)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Rollout {_e(record['id'])}: cluster {_e(record['cluster'])} to eXpressWare {_e(record['version'])}</h1>",
        f'<p><span class="status {_e(status)}">{_e(status)}</span>'
        + (f' <span class="reason">{_e(record["reason"])}</span>' if record.get("reason") else "")
        + "</p>",
    ]
    options = record.get("options") or {}
    meta = [
        f"started {when(facts['t0'])}",
        f"{'as of' if status in _HOLDING else 'ended'} {when(facts['end'])}",
        f"installer {record.get('sia')}",
        f"node_timeout {options.get('node_timeout')} s",
    ]
    if options.get("canary"):
        meta.append(f"canary {options['canary']}")
    if options.get("applications"):
        meta.append("applications " + ", ".join(map(str, options["applications"])))
    if options.get("window"):
        meta.append(f"window {options['window']}")
    out.append(f'<p class="meta">{_e(" · ".join(meta))}</p>')
    out.append(render_svg(record, facts, width=width))
    out.append("<h2>Figures</h2><table>")
    counts = ", ".join(f"{n} {phase}" for phase, n in sorted(figs["counts"].items()))
    rows = [
        ("wall time", duration(figs["wall"])),
        ("nodes updated", f"{figs['updated']} of {figs['to_update']} to update ({counts})"),
        (
            "in flight per node (down), p50 / max",
            f"{duration(figs['in_flight_p50'])} / {duration(figs['in_flight_max'])}",
        ),
        ("most nodes in flight at once", figs["most_in_flight"]),
        (
            "handover (active → next node's first step), p50 / p95 / max",
            f"{duration(figs['handover_p50'])} / {duration(figs['handover_p95'])} / {duration(figs['handover_max'])}"
            f" (n={figs['handover_n']})",
        ),
        (
            "builds",
            f"{figs['built']} of {figs['builds']} group(s) built"
            + (", " + ", ".join(duration(s) for s in figs["build_seconds"]) if figs["build_seconds"] else ""),
        ),
        ("time held (paused, waiting for the window, halted, aborted)", duration(figs["held"])),
    ]
    out += [f'<tr><th>{_e(name)}</th><td class="num">{_e(value)}</td></tr>' for name, value in rows]
    out.append("</table>")
    out.append(
        "<h2>Nodes</h2><table><tr><th>node</th><th>phase</th><th>before</th><th>after</th>"
        "<th>in flight (down)</th><th>attempts</th><th>note or error</th></tr>"
    )
    for node in facts["nodes"]:
        css = ' class="failed"' if node["phase"] == "failed" else ""
        note = f'<span class="error">{_e(node["error"])}</span>' if node["error"] else _e(node["note"] or "")
        earlier = [
            f"attempt {number} failed: {attempt['error']}"
            for number, attempt in enumerate(node["attempts"], 1)
            if attempt["outcome"] == "failed" and number < len(node["attempts"])
        ]
        note += "".join(f'<br><span class="error">{_e(text)}</span>' for text in earlier)
        out.append(
            f"<tr{css}><td>{_e(node['minion'])}</td><td>{_e(node['phase'])}</td><td>{_e(node['before'])}</td>"
            f'<td>{_e(node["after"] or "")}</td><td class="num">{_e(duration(node["in_flight"]))}</td>'
            f'<td class="num">{len(node["attempts"])}</td><td>{note}</td></tr>'
        )
    out.append("</table>")
    if record["groups"]:
        out.append(
            "<h2>Builds and staging</h2><table><tr><th>group (arch/OS/kernel)</th><th>builder</th><th>nodes</th>"
            "<th>RPMs</th><th>build</th><th>staged</th></tr>"
        )
        took = {b["group"]: b for b in facts["builds"]}
        for key, group in record["groups"].items():
            build = took.get(key) or {}
            seconds = build["end"] - build["start"] if build.get("start") is not None and build.get("end") else None
            out.append(
                f"<tr><td>{_e(key)}</td><td>{_e(group['builder'])}</td>"
                f'<td class="num">{len(group["nodes"])}</td>'
                f"<td>{_e(', '.join(group['rpms']) or '—')}</td>"
                f"<td>{'built' if group['built'] else 'not built'}"
                f"{' in ' + _e(duration(seconds)) if seconds is not None else ''}</td>"
                f"<td>{'yes' if group['staged'] else 'no'}</td></tr>"
            )
        out.append("</table>")
    if facts["holds"]:
        out.append("<h2>Holds</h2><table><tr><th>kind</th><th>from</th><th>for</th><th>reason</th></tr>")
        for hold in facts["holds"]:
            length = duration((hold["end"] if hold["end"] is not None else facts["end"]) - hold["start"])
            out.append(
                f"<tr><td>{_e(hold['kind'])}</td><td>{_e(when(hold['start']))}</td>"
                f'<td class="num">{_e(length)}{"" if hold["end"] is not None else " (still)"}</td>'
                f"<td>{_e(hold['reason'])}</td></tr>"
            )
        out.append("</table>")
    out.append(
        f"<h2>Log</h2><details><summary>the record's log ({len(record.get('log') or [])} entries)</summary><pre>"
    )
    for entry in record.get("log") or []:
        out.append(f"+{entry['time'] - facts['t0']:9.2f} s  {_e(entry['message'])}")
    out.append("</pre></details></body></html>")
    return "\n".join(out) + "\n"


def write(record, path, tz=None, now=None, fmt="html"):
    """Write the page of ``record`` (``fmt="svg"``: its standalone picture) to ``path`` (atomically: a reader sees
    the old page or the new one)."""
    text = render_svg(record, standalone=True, now=now) if fmt == "svg" else render_html(record, tz=tz, now=now)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="." + fmt)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
