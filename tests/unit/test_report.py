"""The picture of a rollout (HTML with inline SVG) and the rows of rolling.list, from records the rollout core made."""

import datetime
import html.parser
import json
import re

import pytest

from tests.shared_code import load

rollout = load("expressware_rollout")
report = load("expressware_report")

GRAINS = {"cpuarch": "x86_64", "os": "Rocky", "osrelease": "9.3", "kernelrelease": "5.14.0-362.el9.x86_64"}
OPTIONS = {
    "reboot": False,
    "enforce": False,
    "applications": ["ndbmtd"],
    "node_timeout": 30,
    "compat": None,
    "canary": 0,
    "frontend": None,
    "build": True,
}
T0 = 1_764_000_000.0  # 2025-11-24 16:00 UTC
TIMEOUT_ERROR = (
    "not active within 30 s (a timeout is a failure): inactive, installed 5.26.0, running 5.25.2; "
    "links down: <adapter 0>"
)


def fact(installed="5.25.2", action="install"):
    return {
        "decision": {"action": action, "reason": "test", "installed": installed},
        "node_state": {"active": True, "reasons": []},
        "installed": installed,
        "grains": GRAINS,
        "workdir": "/var/cache/expressware",
    }


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self, seconds=0.0):
        self.now += seconds
        return self.now


def new(nodes=4, skipped=(), clock=None, **options):
    facts = {f"node{i}": fact() for i in range(1, nodes + 1)}
    for minion in skipped:
        facts[minion] = fact(installed="5.26.0", action="none")
    return rollout.new_record(
        "20251124T160000-abc123",
        "db1",
        "5.26.0",
        "salt://expressware/Dolphin_eXpressWare-5.26.0.sh",
        facts,
        dict(OPTIONS, **options),
        clock.now if clock else T0,
    )


def run(record, clock, fail=None, runner_says=True):
    """Drive the record the way the runner does, with the times a simulated cluster takes:
    build 3 s, every node 2 s stopping + 1 s installing + 1.5 s waiting, 0.2 s handovers.
    ``fail``: ``{minion: error}``; ``runner_says``: the runner's progress lines the core has no mark of."""
    fail = fail or {}
    while (action := rollout.next_action(record)) is not None:
        kind = action[0]
        if kind == "build":
            group = record["groups"][action[1]]
            if runner_says:
                rollout.log(record, clock(0.5), f"building RPMs for {action[1]} on {group['builder']} (it stays up)")
            rollout.mark_built(record, action[1], ["Dolphin-PX-5.26.0-1.x86_64.rpm"], clock(3.0))
        elif kind == "stage":
            rollout.mark_staged(record, action[1], clock(0.4))
        elif kind == "update":
            minion = action[1]
            rollout.mark_phase(record, minion, rollout.STOPPING, clock(0.2))
            while (work := rollout.background_action(record)) is not None:
                if runner_says:
                    rollout.log(record, clock(0.1), f"staging 1 RPM(s) of {work[1]} on 3 node(s)")
                rollout.mark_staged(record, work[1], clock(0.6))
            rollout.mark_phase(record, minion, rollout.INSTALLING, clock(1.3))
            rollout.mark_phase(record, minion, rollout.WAITING, clock(1.0))
            if minion in fail:
                rollout.mark_failed(record, minion, fail[minion], clock(30.0), after="5.26.0")
                if runner_says:  # the runner repeats it in its progress
                    rollout.log(record, clock(0.1), f"{minion} FAILED: {fail[minion]}")
                    rollout.log(record, clock(), f"halted: {record['reason']}")
            else:
                rollout.mark_active(record, minion, "5.26.0", clock(1.5))
                if runner_says:
                    rollout.log(record, clock(), f"{minion}: active on 5.26.0")
        elif kind == "pause":
            rollout.pause(record, action[1], clock(0.1))
            if runner_says:
                rollout.log(record, clock(), f"paused: {action[1]}")
        elif kind == "finish":
            rollout.finish(record, clock(0.3))
    record["updated"] = clock()
    return record


def finished():
    clock = Clock()
    return run(new(skipped=("node4",), clock=clock), clock), clock


def halted():
    clock = Clock()
    return run(new(clock=clock), clock, fail={"node2": TIMEOUT_ERROR}), clock


def paused_canary():
    clock = Clock()
    return run(new(clock=clock, canary=1), clock), clock


def resumed():
    record, clock = halted()
    rollout.resume(record, clock(600.0))
    return run(record, clock), clock


class Page(html.parser.HTMLParser):
    """Every tag with its attributes, and the text."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.stack, self.errors = [], [], [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta", "br", "circle", "rect", "line", "path", "img", "link") or tag == "svg":
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in ("circle", "rect", "line", "path"):
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parsed(record):
    page = Page(report.render_html(record, tz=datetime.timezone.utc))
    assert page.errors == [] and page.stack == [], "the page's elements nest properly"
    return page


def lane_labels(page):
    texts = []
    collecting = False
    for tag, attrs in page.tags:
        collecting = tag == "text" and attrs.get("class") == "lane"
        if collecting:
            texts.append(attrs)
    return texts


# -- the facts --------------------------------------------------------------------------


def test_timeline_of_a_finished_rollout():
    record, _ = finished()
    facts = report.timeline(record)
    nodes = {n["minion"]: n for n in facts["nodes"]}
    assert [n["minion"] for n in facts["nodes"]] == ["node1", "node2", "node3", "node4"]
    for minion in ("node1", "node2", "node3"):
        (attempt,) = nodes[minion]["attempts"]
        assert [p for p, _ in attempt["phases"]] == ["stopping", "installing", "waiting"]
        assert attempt["outcome"] == "active"
        assert attempt["start"] == record["nodes"][minion]["started"]
        assert attempt["end"] == record["nodes"][minion]["finished"]
    # node1 also waited for the staging (0.7 s) while in flight.
    assert nodes["node1"]["in_flight"] == pytest.approx(4.5)
    assert nodes["node2"]["in_flight"] == pytest.approx(3.8)
    assert nodes["node4"]["attempts"] == [] and nodes["node4"]["phase"] == "skipped"
    (build,) = facts["builds"]
    assert build["end"] - build["start"] == pytest.approx(3.0) and build["builder"] == "node1" and build["rpms"] == 1
    (staging,) = facts["stagings"]
    assert staging["end"] - staging["start"] == pytest.approx(0.6)
    assert [(h["from"], h["to"]) for h in facts["handovers"]] == [("node1", "node2"), ("node2", "node3")]
    assert all(h["seconds"] == pytest.approx(0.2) for h in facts["handovers"])
    assert facts["holds"] == []


def test_figures_of_a_finished_rollout():
    record, clock = finished()
    figs = report.figures(record)
    assert figs["wall"] == pytest.approx(report.end_time(record) - T0)
    assert report.end_time(record) < clock.now or record["status"] == "done"
    assert (figs["updated"], figs["to_update"]) == (3, 3)
    assert figs["counts"] == {"active": 3, "skipped": 1}
    assert figs["handover_n"] == 2 and figs["handover_p50"] == pytest.approx(0.2)
    assert figs["handover_p95"] == pytest.approx(0.2)
    assert figs["in_flight_p50"] == pytest.approx(3.8) and figs["in_flight_max"] == pytest.approx(4.5)
    assert figs["build_seconds"] == [pytest.approx(3.0)] and figs["built"] == figs["builds"] == 1
    assert figs["most_in_flight"] == 1
    assert figs["held"] == 0


def test_a_failed_node_and_its_reason():
    record, _ = halted()
    facts = report.timeline(record)
    nodes = {n["minion"]: n for n in facts["nodes"]}
    (attempt,) = nodes["node2"]["attempts"]
    assert attempt["outcome"] == "failed" and attempt["error"] == TIMEOUT_ERROR
    assert nodes["node3"]["attempts"] == [] and nodes["node3"]["phase"] == "staged"
    (hold,) = facts["holds"]  # the runner's repetition of the halt is not a second hold
    assert hold["kind"] == "halted" and hold["reason"] == f"node2 failed: {TIMEOUT_ERROR}" and hold["end"] is None
    assert [(h["from"], h["to"]) for h in facts["handovers"]] == [("node1", "node2")]


def test_a_canary_pause_is_a_hold_and_no_handover_crosses_it():
    record, _ = paused_canary()
    facts = report.timeline(record)
    (hold,) = facts["holds"]
    assert hold["kind"] == "paused" and hold["reason"].startswith("canary: the first 1 node(s) are updated")
    assert facts["handovers"] == []
    figs = report.figures(record)
    assert (figs["updated"], figs["to_update"]) == (1, 4) and figs["held"] == 0  # paused just now
    later = report.figures(record, now=report.end_time(record) + 120)
    assert later["held"] == pytest.approx(120) and later["wall"] == pytest.approx(figs["wall"] + 120)


def test_resumed_after_a_failure():
    record, _ = resumed()
    assert record["status"] == "done"
    facts = report.timeline(record)
    nodes = {n["minion"]: n for n in facts["nodes"]}
    first, second = nodes["node2"]["attempts"]
    assert (first["outcome"], second["outcome"]) == ("failed", "active")
    assert first["error"] == TIMEOUT_ERROR
    (hold,) = facts["holds"]
    assert hold["kind"] == "halted" and hold["end"] - hold["start"] == pytest.approx(600.0, abs=1)
    # No handover across the halt: node1 -> node2 (the first try), then node2 -> node3 -> node4.
    assert [(h["from"], h["to"]) for h in facts["handovers"]] == [
        ("node1", "node2"),
        ("node2", "node3"),
        ("node3", "node4"),
    ]
    figs = report.figures(record)
    assert figs["updated"] == 4 and figs["held"] == pytest.approx(600.0, abs=1)
    text = " ".join(parsed(record).text)
    assert f"attempt 1 failed: {TIMEOUT_ERROR}" in text  # the earlier failure stays in the nodes table


def test_a_wait_for_the_maintenance_window_is_a_hold():
    """The runner logs a window's wait as ``waiting: <reason>`` and its end as ``resumed``."""
    clock = Clock()
    record = new(clock=clock)
    reason = "outside the maintenance window Sat-Sun 01:00-05:00 (UTC); goes on by itself at Sat 2025-11-29 01:00 UTC"
    rollout.log(record, clock(1.0), f"waiting: {reason}")
    rollout.log(record, clock(3600.0), "resumed")
    run(record, clock)
    facts = report.timeline(record)
    (hold,) = facts["holds"]
    assert (hold["kind"], hold["reason"], hold["end"] - hold["start"]) == ("waiting", reason, 3600.0)
    assert report.figures(record)["held"] == 3600.0
    assert reason in " ".join(parsed(record).text)


def test_now_does_not_stretch_a_finished_rollout():
    record, _ = finished()
    assert report.end_time(record, now=report.end_time(record) + 999) == report.end_time(record)
    running = new()
    assert report.end_time(running, now=T0 + 50) == T0 + 50
    assert report.rollout_list([running], now=T0 + 50)[0]["duration"] == 50


def test_lanes_from_the_record_when_the_log_is_gone():
    record, _ = finished()
    record["log"] = []  # a long rollout: the log keeps only its last entries
    facts = report.timeline(record)
    node1 = next(n for n in facts["nodes"] if n["minion"] == "node1")
    (attempt,) = node1["attempts"]
    assert (attempt["start"], attempt["end"]) == (
        record["nodes"]["node1"]["started"],
        record["nodes"]["node1"]["finished"],
    )
    assert attempt["phases"] == [("in flight", attempt["start"])] and attempt["outcome"] == "active"
    assert "node1" in report.render_html(record)


def test_core_marks_alone_are_enough():
    """Without the runner's progress lines: no build or staging start, the rest is there."""
    clock = Clock()
    record = run(new(clock=clock), clock, fail={"node3": "the installer failed"}, runner_says=False)
    facts = report.timeline(record)
    assert facts["builds"][0]["start"] is None and facts["builds"][0]["end"] is not None
    assert {n["minion"]: [a["outcome"] for a in n["attempts"]] for n in facts["nodes"]} == {
        "node1": ["active"],
        "node2": ["active"],
        "node3": ["failed"],
        "node4": [],
    }
    assert "the installer failed" in report.render_html(record)


# -- the page -------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [finished, halted, paused_canary, resumed])
def test_page_parses_and_is_self_contained(make):
    record, _ = make()
    text = report.render_html(record)
    page = parsed(record)
    tags = {tag for tag, _ in page.tags}
    assert {"html", "head", "style", "body", "svg", "table"} <= tags
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "image", "use", "a"}
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not (name in ("href", "src", "xlink:href", "action") or name.startswith("on")), (tag, name, value)
    assert not re.search(r"https?:|url\(|@import", text, re.I)
    style = text[text.index("<style>") : text.index("</style>")]
    assert "//" not in style
    assert text.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("make", [finished, halted, paused_canary, resumed])
def test_every_node_has_a_lane(make):
    record, _ = make()
    page = parsed(record)
    text = "".join(page.text)
    lanes = re.findall(r'<text class="lane"[^>]*><title>([^<]*)</title>', report.render_html(record))
    assert lanes == ["builds &amp; staging"] + sorted(record["nodes"])
    for minion in record["nodes"]:
        assert minion in text


def test_page_of_a_halted_rollout_shows_the_failure():
    record, _ = halted()
    page = parsed(record)
    text = " ".join(page.text)
    assert "halted" in text
    assert TIMEOUT_ERROR in text  # in the nodes table and as the failure mark's full text
    svg = report.render_svg(record)
    assert re.search(
        r'<text class="failure"[^>]*><title>' + re.escape(TIMEOUT_ERROR.replace("<", "&lt;").replace(">", "&gt;")), svg
    )
    assert "&lt;adapter 0&gt;" in report.render_html(record)  # minion text is escaped
    assert "not started" in text  # node3 and node4


def test_page_figures_table():
    record, _ = finished()
    page = parsed(record)
    text = " ".join(" ".join(page.text).split())
    assert "wall time" in text and report.duration(report.figures(record)["wall"]) in text
    assert "3 of 3 to update (3 active, 1 skipped)" in text
    assert "0.20 s / 0.20 s / 0.20 s (n=2)" in text  # handover p50 / p95 / max
    assert "1 of 1 group(s) built, 3.00 s" in text
    assert "most nodes in flight at once 1" in text
    assert "skipped: already on the target" in text
    for minion, seconds in report.figures(record)["in_flight"].items():
        assert report.duration(seconds) in text, minion


def test_page_of_a_paused_canary_says_why_and_still():
    record, _ = paused_canary()
    text = " ".join(parsed(record).text)
    assert "paused" in text and "canary: the first 1 node(s) are updated" in text and "(still)" in text


def test_untrusted_text_is_escaped():
    clock = Clock()
    evil = '<script>alert("x")</script><img src="http://example.com/x.png">'
    record = run(new(clock=clock), clock, fail={"node1": evil})
    text = report.render_html(record)
    page = Page(text)
    assert not any(tag in ("script", "img") for tag, _ in page.tags)
    assert evil in " ".join(page.text)


def test_standalone_svg_has_its_namespace():
    record, _ = finished()
    assert report.render_svg(record, standalone=True).startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert "xmlns" not in report.render_svg(record)


def test_write_replaces_the_page(tmp_path):
    record, _ = finished()
    path = tmp_path / "reports" / f"{record['id']}.html"
    assert report.write(record, str(path)) == str(path)
    assert path.read_text(encoding="utf-8") == report.render_html(record)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


# -- rolling.list ---------------------------------------------------------------------------


def test_rollout_list_rows_most_recent_first():
    done, _ = finished()
    stopped, _ = halted()
    stopped["id"], stopped["created"] = "20251125T090000-def456", T0 + 86400
    stopped["updated"] += 86400
    rows = report.rollout_list([done, stopped], tz=datetime.timezone.utc)
    assert [r["rollout"] for r in rows] == ["20251125T090000-def456", "20251124T160000-abc123"]
    assert rows[1] == {
        "rollout": "20251124T160000-abc123",
        "cluster": "db1",
        "version": "5.26.0",
        "status": "done",
        "started": "2025-11-24T16:00:00+00:00",
        "duration": round(report.end_time(done) - T0, 1),
        "nodes": "3/3",
    }
    assert rows[0]["status"] == "halted" and rows[0]["nodes"] == "1/4"
    assert json.loads(json.dumps(rows)) == rows  # salt-run --out=json


def test_rollout_list_empty():
    assert report.rollout_list([]) == []


def test_duration_format():
    assert [report.duration(s) for s in (None, 0.84, 12.34, 245, 7620)] == [
        "—",
        "0.84 s",
        "12.3 s",
        "4 min 05 s",
        "2 h 07 min",
    ]


def test_percentile_is_an_observed_value():
    assert report.percentile([0.1, 0.5, 0.2, 9.0], 50) == 0.2
    assert report.percentile([0.1, 0.5, 0.2, 9.0], 95) == 9.0
    assert report.percentile([], 50) is None
