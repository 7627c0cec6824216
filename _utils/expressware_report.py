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

This module is the front end, split by concern: the facts (timeline, figures) are ``expressware_report_facts``'s,
the SVG picture ``expressware_report_svg``'s (both loaded with ``_sibling()``, their names re-exported here); the
HTML page, its file and the rows of ``rolling.list`` are here.
"""

import contextlib
import datetime
import importlib.util
import os
import sys
import tempfile


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
_svg = _sibling("expressware_report_svg")

percentile = _facts.percentile
end_time = _facts.end_time
timeline = _facts.timeline
figures = _facts.figures
_HOLDING = _facts.HOLDING

COLOURS = _svg.COLOURS
duration = _svg.duration
LANE, GAP, LEFT, RIGHT, TOP = _svg.LANE, _svg.GAP, _svg.LEFT, _svg.RIGHT, _svg.TOP
render_svg = _svg.render_svg
_e = _svg._e  # one escaping for the page and its picture


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
        for link in ("rollback_of", "rolled_back_by", "fleet"):  # a rollback and its original; a fleet's rollouts
            if record.get(link):
                rows[-1][link] = record[link]
    return rows


def _when(timestamp, tz=None):
    if tz is None:
        return datetime.datetime.fromtimestamp(timestamp).astimezone()
    return datetime.datetime.fromtimestamp(timestamp, tz)


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------

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
