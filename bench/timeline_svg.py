"""A hand-written SVG timeline: one lane per node, one panel per job, all panels on the same time scale."""

from xml.sax.saxutils import escape

COLOURS = {
    "procedure": "#cfd8dc",  # first change (application stopped) -> application started again
    "down": "#e53935",  # the stack is down: down event -> active event
    "build": "#1e88e5",  # an installer run that builds RPMs (--build-rpm, or --install-node without RPMs)
    "install": "#90caf9",  # an installer run with --use-rpms
    "end": "#424242",
}

LANE, GAP, LEFT, RIGHT, TOP, PANEL_HEAD, AXIS = 18, 6, 70, 20, 36, 28, 26


def _nice_step(span, width_px):
    for step in (0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300):
        if span / step * 55 <= width_px:
            return step
    return 600


def render(panels, width=980, title="Rolling update timeline"):
    """``panels``: [{"title", "t0", "wall_s", "nodes": [node_facts...]}]; time 0 is each panel's job start."""
    span = max((p["wall_s"] for p in panels), default=1.0) or 1.0
    plot_w = width - LEFT - RIGHT
    x = lambda t: LEFT + plot_w * max(0.0, t) / span  # noqa: E731
    heights = [PANEL_HEAD + len(p["nodes"]) * (LANE + GAP) + AXIS for p in panels]
    legend_h = 30
    height = TOP + sum(heights) + legend_h + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    y0 = TOP
    step = _nice_step(span, plot_w)
    for panel, h in zip(panels, heights):
        t0 = panel["t0"]
        out.append(f'<text x="{LEFT}" y="{y0 + 17}" font-size="12" font-weight="bold">{escape(panel["title"])}</text>')
        lanes_top = y0 + PANEL_HEAD
        lanes_bottom = lanes_top + len(panel["nodes"]) * (LANE + GAP)
        tick = 0.0
        while tick <= span + 1e-9:
            xt = x(tick)
            out.append(f'<line x1="{xt:.1f}" y1="{lanes_top - 4}" x2="{xt:.1f}" y2="{lanes_bottom}" stroke="#eeeeee"/>')
            out.append(f'<text x="{xt:.1f}" y="{lanes_bottom + 14}" text-anchor="middle" fill="#555">{tick:g} s</text>')
            tick += step
        for i, node in enumerate(panel["nodes"]):
            ly = lanes_top + i * (LANE + GAP)
            out.append(f'<text x="{LEFT - 8}" y="{ly + LANE - 5}" text-anchor="end">{escape(node["node"])}</text>')
            out.append(
                f'<line x1="{LEFT}" y1="{ly + LANE / 2}" x2="{LEFT + plot_w}" y2="{ly + LANE / 2}" stroke="#f5f5f5"/>'
            )
            if node["first_change"] is not None:
                end = node["app_start"] or node["active"] or (t0 + panel["wall_s"])
                out.append(
                    _bar(
                        x(node["first_change"] - t0),
                        x(end - t0),
                        ly + 2,
                        LANE - 4,
                        COLOURS["procedure"],
                        f"{node['node']}: applications stopped {node['first_change'] - t0:.2f} s .. "
                        f"started {end - t0:.2f} s",
                    )
                )
            if node["down"] is not None:
                end = node["active"] if node["active"] is not None else t0 + panel["wall_s"]
                out.append(
                    _bar(
                        x(node["down"] - t0),
                        x(end - t0),
                        ly + 5,
                        LANE - 10,
                        COLOURS["down"],
                        f"{node['node']}: down {node['down'] - t0:.2f} s .. active {end - t0:.2f} s "
                        f"({end - node['down']:.2f} s)",
                    )
                )
            for run in node["sia"]:
                builds = "--build-rpm" in run["command"] or "--use-rpms" not in run["command"]
                colour = COLOURS["build"] if builds else COLOURS["install"]
                out.append(
                    _bar(
                        x(run["start"] - t0),
                        x(run["end"] - t0),
                        ly,
                        3,
                        colour,
                        f"{node['node']}: {run['command']} ({run['end'] - run['start']:.2f} s)",
                    )
                )
        xe = x(panel["wall_s"])
        out.append(
            f'<line x1="{xe:.1f}" y1="{lanes_top - 6}" x2="{xe:.1f}" y2="{lanes_bottom}" '
            f'stroke="{COLOURS["end"]}" stroke-dasharray="4,3"/>'
        )
        out.append(
            f'<text x="{xe - 3:.1f}" y="{lanes_top - 8}" text-anchor="end" fill="{COLOURS["end"]}">'
            f"command returns, {panel['wall_s']:.1f} s</text>"
        )
        y0 += h
    ly = y0 + 8
    items = [
        ("procedure", "applications stopped"),
        ("down", "node down (down to active)"),
        ("build", "installer building RPMs"),
        ("install", "installer with staged RPMs"),
    ]
    lx = LEFT
    for key, label in items:
        out.append(f'<rect x="{lx}" y="{ly}" width="14" height="10" fill="{COLOURS[key]}"/>')
        out.append(f'<text x="{lx + 18}" y="{ly + 9}">{escape(label)}</text>')
        lx += 30 + 7 * len(label)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _bar(x1, x2, y, h, colour, tooltip):
    w = max(1.0, x2 - x1)
    return (
        f'<rect x="{x1:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h}" fill="{colour}">'
        f"<title>{escape(tooltip)}</title></rect>"
    )
