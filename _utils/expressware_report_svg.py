"""The picture of a rollout: its timeline as inline SVG (one lane per node, the builds and staging, the holds).

Part of :mod:`expressware_report`, the front end the runner loads (it re-exports every public name of this module);
the facts drawn are ``expressware_report_facts``'s. Everything a minion sent is escaped: it is untrusted text.
"""

import html
import importlib.util
import math
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


_facts = _sibling("expressware_report_facts")
timeline = _facts.timeline


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
