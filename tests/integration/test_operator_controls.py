"""Operator controls on a real master with three minions (issue 12): ``rolling.list``, ``rolling.report``, long
waits that say so, a maintenance window."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from expressware_sim import down_intervals
from tests.conftest import NEW, OLD, changing_commands
from tests.integration.conftest import NODE_IDS
from tests.integration.rollouts import (  # noqa: F401 (fixtures)
    background_update,
    commands,
    data_nodes,
    no_leftover_lease,
    recorded_status,
    update_args,
    wait_for,
)


def salt_run(master, *args, timeout=120):
    """``salt-run -c <master config dir> --out=json ...`` from a shell, as an operator runs it."""
    cmdline = [str(Path(sys.executable).with_name("salt-run")), "-c", str(master.config_dir), "--out=json", *args]
    return subprocess.run(cmdline, capture_output=True, text=True, timeout=timeout, check=False)


def lane(page, minion):
    """The text label of ``minion``'s lane in the picture."""
    return re.search(rf'<text class="lane"[^>]*><title>{re.escape(minion)}</title>', page)


def test_list_and_report_after_a_rollout(master, salt_run_cli, tmp_path):
    ret = salt_run_cli.run("rolling.update", *update_args(), _timeout=300)
    assert ret.returncode == 0 and ret.data["status"] == "done", ret.stderr
    rollout = ret.data["rollout"]

    listed = salt_run_cli.run("rolling.list", "limit=5")
    assert listed.returncode == 0, listed.stderr
    (row,) = [r for r in listed.data if r["rollout"] == rollout]
    assert row["cluster"] == "default" and row["version"] == NEW and row["status"] == "done"
    assert row["nodes"] == "3/3" and row["duration"] > 0
    assert listed.data[0]["rollout"] == rollout  # most recent first
    assert len(salt_run_cli.run("rolling.list", "limit=1").data) == 1
    assert salt_run_cli.run("rolling.list", "cluster=nosuchcluster").data == []

    # The report, through the operator's own command line; by default under the master's cache.
    proc = salt_run(master, "rolling.report", f"rollout={rollout}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["rollout"] == rollout and result["status"] == "done"
    assert result["path"].endswith(f"/expressware/reports/{rollout}.html")
    page = Path(result["path"]).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and rollout in page
    for minion in NODE_IDS:
        assert lane(page, minion), minion
        assert f"{minion}: active on {NEW}" in page  # its log line, in the page's log

    # An SVG where the operator asks; the latest rollout by default.
    svg_path = tmp_path / "latest.svg"
    proc = salt_run(master, "rolling.report", f"path={svg_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["path"] == str(svg_path)
    svg = svg_path.read_text(encoding="utf-8")
    assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert all(lane(svg, minion) for minion in NODE_IDS)


def test_report_and_list_refuse_bad_input(master, salt_run_cli, tmp_path):
    for args, says in (
        (["path=relative.html"], "absolute path"),
        ([f"path={tmp_path}/x.png"], "absolute path"),
        (["format=pdf"], "format must be"),
        (["rollout=no-such-rollout"], "no rollout"),
        ([f"path={tmp_path}/x.svg", "format=html"], "does not end in .html"),
    ):
        proc = salt_run(master, "rolling.report", *args)
        assert proc.returncode != 0, (args, proc.stdout)
        assert says in json.loads(proc.stdout)["comment"], (args, proc.stdout)
    assert not list(tmp_path.iterdir())
    bad = salt_run_cli.run("rolling.list", "limit=-1")
    assert bad.returncode != 0 and "limit must be" in bad.data["comment"]


def test_a_long_wait_says_how_long_and_what_the_node_says(master, salt_run_cli, nodes):
    """A node that never becomes active: before the halt, the progress and rolling.status say how long it has
    waited out of node_timeout and what the node says about itself, every progress_every seconds."""
    nodes["node1"].set_fault("never-active")  # takes effect at its next start: its links never train
    proc = background_update(salt_run_cli, *update_args(node_timeout=20, progress_every=5))
    try:
        seen = []

        def evidence():
            data = recorded_status(master)
            node1 = (data.get("nodes") or {}).get("node1") or {}
            if data.get("status") == "running" and node1.get("evidence"):
                seen.append(node1["evidence"])
            return seen

        wait_for(evidence, 90, "rolling.status to show node1's long wait")
        shown = seen[0]
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, err.decode()[-3000:]
    assert re.match(
        r"node1: (stopping|installing|waiting) for \d+ s of the 20 s allowed \(node_timeout\); ", shown["note"]
    ), shown
    assert "the node says: inactive" in shown["note"] or "did not answer" in shown["note"], shown
    progress = err.decode()
    said = re.findall(r"node1: \w+ for (\d+) s of the 20 s allowed \(node_timeout\)(.*)", progress)
    # Said within the 20 s: only progress_every (5) makes that happen, the default (30 s) would say nothing. How many
    # lines depends on how fast the node answers each look (under load, one).
    assert said and all(5 <= int(waited) <= 20 for waited, _ in said), progress[-3000:]
    assert any("the node says: inactive, installed " in rest for _, rest in said), said
    assert progress.index("of the 20 s allowed") < progress.index("node1 FAILED")
    assert json.loads(out)["status"] == "halted"


def test_a_window_that_closes_between_nodes(master, salt_run_cli, nodes, tmp_path):
    """The window closes while node1 is in flight (the test moves the runner's window clock, see
    expressware_window.TEST_CLOCK_OFFSET_ENV): node2 waits, with the reason and when it goes on; when the window opens
    again the rollout goes on by itself."""
    offset_file = tmp_path / "offset"
    offset_file.write_text("0")
    now = time.time()
    opens, closes = now - 3600, now + 2 * 3600
    hm = lambda t: time.strftime("%H:%M", time.gmtime(t))  # noqa: E731
    window = f"daily {hm(opens)}-{hm(closes)}"
    next_open = (int(opens) // 60) * 60 + 86400  # its opening tomorrow, to the minute
    env = dict(os.environ, EXPRESSWARE_TEST_WINDOW_CLOCK_OFFSET_FILE=str(offset_file))
    planned = salt_run_cli.run("rolling.plan", *update_args(window=window, window_tz="UTC"))
    assert planned.data["window"] == {"window": f"{window} (UTC)", "first_node": "now"}, planned.data
    cmdline = salt_run_cli.cmdline("rolling.update", *update_args(window=window, window_tz="UTC"))
    proc = subprocess.Popen(cmdline, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env)
    try:

        def status():
            return recorded_status(master)

        # node1 is down: its update began (inside the window); node2's turn comes once it is back.
        wait_for(lambda: not nodes["node1"].is_active(), 120, "node1 to go down")
        offset_file.write_text(str(3 * 3600))  # the window is now closed until next_open
        wait_for(lambda: status().get("status") == "waiting", 120, "the rollout to wait for its window")
        waiting = salt_run_cli.run("rolling.status", _timeout=60).data  # what the operator sees (goes_on_at)
        assert waiting["nodes"]["node1"]["phase"] == "active" and waiting["nodes"]["node2"]["phase"] == "staged"
        assert waiting["resume_at"] == next_open, waiting
        assert "outside the maintenance window" in waiting["reason"]
        assert waiting["goes_on_at"] == time.strftime("%a %Y-%m-%d %H:%M UTC", time.gmtime(next_open))
        assert waiting["goes_on_at"] in waiting["reason"] and waiting["driver"]["alive"] is True
        time.sleep(3)
        assert nodes["node2"].is_active() and not commands(nodes["node2"], "--install-node")  # it still waits
        moved = time.time()
        offset_file.write_text(str(next_open - time.time() - 2))  # the window opens in 2 s
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err.decode()[-3000:]
    result = json.loads(out)
    assert result["status"] == "done" and result["nodes"]["node2"]["after"] == NEW
    # node2 went down only after the window opened again.
    assert down_intervals([nodes["node2"].root])["node2"][0][0] >= moved
    progress = err.decode()
    assert (
        progress.index("node1: active on")
        < progress.index("waiting: outside the maintenance window")
        < progress.index("is open: going on")
        < progress.index("node2 (2/3): updating")
    )


def test_the_state_under_highstate_honours_the_clusters_window_through_the_lease(salt_cli, salt_run_cli, nodes):
    """The master configuration's window of a cluster (tests/integration/conftest.py WINDOWS) holds the state too:
    its lease is refused outside the window, and when the node's update (the state's timeout) would not be done
    before the window closes; inside a window that fits, the state updates the node."""
    node = nodes["node1"]
    before = changing_commands(node)

    def highstate(cluster, timeout=600):
        pillar = {
            "expressware": {
                "version": NEW,
                "applications": ["ndbmtd"],
                "lease_wait": 2,
                "cluster": cluster,
                "timeout": timeout,
            }
        }
        ret = salt_cli.run("state.apply", "expressware", "pillar=" + json.dumps(pillar), minion_tgt="node1")
        (result,) = [v for k, v in ret.data.items() if k.startswith("expressware_|-")]
        return result

    closed = highstate("winclosed")
    assert closed["result"] is False and "Deferred" in closed["comment"], closed
    assert "outside the maintenance window daily" in closed["comment"], closed
    assert "the state may run from" in closed["comment"], closed
    # The window (4 hours a day) is open, but closes within 3 hours: an update that may take 3 h 30 min does not
    # start now, it may from tomorrow's opening; one that may take 5 hours never fits.
    short = highstate("winopen", timeout=3 * 3600 + 1800)
    assert short["result"] is False and "Deferred" in short["comment"], short
    assert "before the update of node1 (expected 3 h 30 min) would be done" in short["comment"], short
    assert "the state may run from" in short["comment"], short
    never = highstate("winopen", timeout=5 * 3600)
    assert "no opening in the next two weeks is long enough for the update of node1" in never["comment"], never
    assert changing_commands(node) == before and node.state()["installed_version"] == OLD
    assert salt_run_cli.run("expressware_lease.show", "cluster=winclosed").data["held"] is False
    # The operator taking a lease by hand is not held by the window.
    taken = salt_run_cli.run("expressware_lease.acquire", "cluster=winclosed", "holder=maintenance")
    assert taken.data["granted"] is True, taken.data
    assert salt_run_cli.run("expressware_lease.release", "cluster=winclosed").returncode == 0

    opened = highstate("winopen")
    # The master caches the pillar a state run compiled, its inline override too: node1 would stay in cluster
    # winopen for the master (a later rollout of every node would be a fleet of two clusters).
    assert salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="node1").returncode == 0
    assert opened["result"] is True, opened
    assert node.state()["installed_version"] == NEW
