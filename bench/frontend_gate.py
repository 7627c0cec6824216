"""The handover with the vendor's cluster view as a second gate (``frontend=``): what waiting for the Network
Manager's UP after each node costs, on real daemons.

``python bench/frontend_gate.py [--workdir DIR] [--output docs/benchmark-frontend.md]``: a real ``salt-master``, 8
minions on simulated Cluster Nodes running ``ndbmtd`` and a ninth minion on a simulated Cluster Management Node
(frontend), the rolling phase's delays (``bench/run.py``). On the frontend, ``salt node9 state.apply
expressware.notify`` installs the notification script (the real command line); the simulated Network Manager runs as
its own process (``python -m expressware_sim netmgr run``, a look every 0.1 s), watches the 8 nodes and runs the
script on every change of the cluster state, which calls the real ``salt-call event.send``. Then::

    salt-run rolling.update tgt=node1,...,node8 tgt_type=list version=5.26.0 sia=... applications=[ndbmtd] \\
        frontend=node9

(the frontend is on 5.26.0 already: nothing is installed on it at the end).

Each handover (node N ``active`` in its journal to node N+1's first change) now holds, besides the members' gate,
the wait for the frontend to report UP again after node N's flight (a node's own stop takes the cluster out of UP:
REDUCED, then UP once its links are back) and the direct read of that report that confirms it (one
``expressware.cluster_state`` job: nothing on the bus proves who sent the UP). The report splits it with the
frontend's journal (when the Network Manager ran the script for UP) and the rollout's record (the gate's own time).

It measures and reports; it does not pass or fail. Every daemon and process it starts is stopped before it exits.
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import analysis  # noqa: E402
import run  # noqa: E402

from expressware_sim import create_node, read_journal  # noqa: E402
from expressware_sim.netmgr import SCRIPT_NODE_FROM, SCRIPT_STATE_FROM, script_options  # noqa: E402

FRONTEND = "node9"
MEMBERS = [f"node{i}" for i in range(1, 9)]
NETMGR = [sys.executable, "-m", "expressware_sim", "netmgr"]


def _netmgr(*args):
    done = subprocess.run(NETMGR + [str(a) for a in args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise run.SetupError(f"netmgr {args[0]}: {done.stdout}{done.stderr}")


def _install_notify(cl, paths):
    """``salt node9 state.apply expressware.notify`` with ``paths`` in the pillar (the real command line); the
    formula is served from the master's file_roots beside the installers."""
    shutil.copytree(run.REPO / "salt" / "expressware", cl["work"] / "srv" / "salt" / "expressware", dirs_exist_ok=True)
    pillar = json.dumps({"expressware": {"notify": paths}})
    argv = [run.salt_bin("salt"), "-c", cl["conf"], "--out=json", FRONTEND, "state.apply", "expressware.notify"]
    ran = run.run_command(argv + [f"pillar={pillar}"], cl["work"] / "logs" / "notify-install.log")
    results = (run.parse_json(ran["stdout"]) or {}).get(FRONTEND)
    if ran["rc"] != 0 or not isinstance(results, dict) or not all(r.get("result") for r in results.values()):
        raise run.SetupError(f"expressware.notify did not apply on {FRONTEND}: {ran['stdout'][-2000:]}")


def _rolling_update(cl, version):
    argv = [
        run.salt_bin("salt-run"),
        "-c",
        cl["conf"],
        "--out=json",
        "rolling.update",
        f"tgt={','.join(MEMBERS)}",
        "tgt_type=list",
        f"version={version}",
        f"sia={run.sia_url(version)}",
        f"applications=[{run.APPLICATION}]",
        f"frontend={FRONTEND}",
    ]
    run.say("$ salt-run " + " ".join(argv[3:]))
    ran = run.run_command(argv, cl["work"] / "logs" / "frontend-gate.log")
    ran["summary"] = run.parse_json(ran["stdout"])
    run.say(f"salt-run exited {ran['rc']} after {ran['t_end'] - ran['t_start']:.1f} s")
    return ran


def measure(work):
    """Run it in ``work``; the figures as a dict."""
    work = Path(work)
    delays = run.PROFILES["full"]["delays"]
    state_dir = work / "frontend-notify" / "state"
    # The frontend's minion finds the script's state file through config.get (its grains here; pillar at a site).
    grains = {FRONTEND: {"expressware": {"notify": {"state_dir": str(state_dir)}}}}
    with run.cluster(work, len(MEMBERS) + 1, delays, grains=grains) as cl:
        roots = {m: cl["roots"][m] for m in MEMBERS}
        # The ninth node made again as the frontend (its minion keeps its configuration), on the target already:
        # the rollout ends with the nodes (the frontend's own update is not measured here).
        shutil.rmtree(cl["roots"][FRONTEND])
        frontend = create_node(cl["roots"][FRONTEND], name=FRONTEND, version=run.TO_VERSION, role="frontend")
        base = work / "frontend-notify"
        paths = {
            "script": str(base / "sbin" / "expressware-cluster-notify"),
            "config": str(base / "etc" / "cluster-notify.conf"),
            "state_from": SCRIPT_STATE_FROM,
            "node_from": SCRIPT_NODE_FROM,
            "salt_call": run.salt_bin("salt-call"),
            "salt_config_dir": str(cl["work"] / "salt" / FRONTEND / "conf"),
            "state_dir": str(state_dir),
        }
        _install_notify(cl, paths)
        members = [arg for m in MEMBERS for arg in ("--member", roots[m])]
        _netmgr(
            "configure",
            frontend.root,
            *members,
            *script_options(paths["script"], paths["config"]),
        )
        # It notifies changes only: links off and on again, so that the script has reported (DEGRADED, then UP)
        # and the pre-flight finds the last report in its state file.
        for step in (("degrade",), ("step",), ("degrade", "--clear"), ("step",)):
            _netmgr(step[0], frontend.root, *step[1:])
        manager = subprocess.Popen(
            NETMGR + ["run", str(frontend.root), "--interval", "0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            ran = _rolling_update(cl, run.TO_VERSION)
        finally:
            manager.terminate()
            manager.wait(timeout=60)
        figures = analysis.analyse_run(run.journals(roots), ran["t_start"], ran["t_end"])
        record = run.rollout_record(cl, ran["summary"])
        parts = analysis.handover_parts(figures, record)
        runs = [
            e
            for e in read_journal(frontend.root)
            if str(e.get("command", "")).startswith("notify ") and ran["t_start"] <= e["time"] <= ran["t_end"]
        ]
        notified = [(e["time"], e.get("command")) for e in runs]
        rows = []
        for handover in figures["handovers"]:
            before = figures_node(figures, handover["from"])
            after = figures_node(figures, handover["to"])
            up = next((t for t, c in notified if c == "notify UP" and t >= before["active"]), None)
            rows.append(
                {
                    "from": handover["from"],
                    "to": handover["to"],
                    "seconds": handover["seconds"],
                    "up_notified_after_active": None if up is None else up - before["active"],
                    "first_change_after_up": None if up is None else after["first_change"] - up,
                    "gate": (((record or {}).get("health") or {}).get("gate_s") or {}).get(handover["to"]),
                }
            )
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "load": list(os.getloadavg()),
            "rc": ran["rc"],
            "status": (ran["summary"] or {}).get("status"),
            "outcome": run.node_outcome({"roots": roots}, run.TO_VERSION),
            "wall_s": figures["wall_s"],
            "physical_limit_s": figures["physical_limit_s"],
            "ratio": figures["ratio"],
            "max_nodes_down": figures["max_nodes_down"],
            "handover": figures["handover"],
            "rows": rows,
            "parts": parts,
            "notified": [c for _, c in notified],
            "script_s": _mean(e["end"] - e["time"] for e in runs if isinstance(e.get("end"), (int, float))),
            "log": str(ran["log"]),
        }


def figures_node(figures, name):
    return next(n for n in figures["nodes"] if n["node"] == name)


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def _s(value, digits=3):
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(out, baseline=None):
    """Markdown of ``out`` (and, when given, the one-line walk of BENCHMARKS.md without a frontend)."""
    h = out["handover"] or {"p50": None, "p95": None, "max": None}
    lines = [
        "# The handover with the frontend's cluster state as a second gate",
        "",
        f"Written by `python bench/frontend_gate.py` (see its docstring) on {out['date']}; load average at the end "
        f"{', '.join(f'{x:.2f}' for x in out['load'])}. A real `salt-master`, 8 minions on simulated Cluster Nodes "
        "and a ninth on a simulated Cluster Management Node whose Network Manager (its own process) runs the "
        "notification script `expressware.notify` installed; the rolling phase's delays of `BENCHMARKS.md`.",
        "",
        f"Exit status {out['rc']}, rollout status `{out['status']}`; {out['outcome']['ok']} of "
        f"{out['outcome']['of']} nodes on the target, active, application running; most nodes down at once: "
        f"{out['max_nodes_down']}.",
        "",
        "| | seconds |",
        "|---|---|",
        f"| wall time | {_s(out['wall_s'], 2)} |",
        f"| physical limit | {_s(out['physical_limit_s'], 2)} |",
        f"| ratio | {_s(out['ratio'])} |",
        f"| handover p50 / p95 / max | {_s(h['p50'])} / {_s(h['p95'])} / {_s(h['max'])} |",
        "",
        "Each handover: node N `active` (journal) to node N+1's first change; the Network Manager's run of the "
        "script for UP after node N was back (the frontend's journal, `notify UP`); from there to node N+1's first "
        "change (the script's `salt-call event.send`, the runner's direct read of the report that confirms it, one "
        "`expressware.cluster_state` job, and the go-ahead's job); the gate's own time (the record's "
        "`health.gate_s`, part of the handover).",
        "",
        "| handover | seconds | UP notified after N active | N+1's first change after UP | gate |",
        "|---|---|---|---|---|",
    ]
    for row in out["rows"]:
        lines.append(
            f"| {row['from']} → {row['to']} | {_s(row['seconds'])} | {_s(row['up_notified_after_active'])} | "
            f"{_s(row['first_change_after_up'])} | {_s(row['gate'], 4)} |"
        )
    lines.append(
        f"| **mean** | **{_s(_mean(r['seconds'] for r in out['rows']))}** | "
        f"**{_s(_mean(r['up_notified_after_active'] for r in out['rows']))}** | "
        f"**{_s(_mean(r['first_change_after_up'] for r in out['rows']))}** | "
        f"**{_s(_mean(r['gate'] for r in out['rows']), 4)}** |"
    )
    if baseline:
        lines += [
            "",
            f"Without a frontend (`BENCHMARKS.md`, {baseline['date']}): handover p50 / p95 "
            f"{_s(baseline['p50'])} / {_s(baseline['p95'])} s, ratio {_s(baseline['ratio'])}.",
        ]
    lines += [
        "",
        f"The Network Manager ran the script {len(out['notified'])} times "
        f"({', '.join(sorted(set(out['notified'])))}): a node's flight is REDUCED, DEGRADED, then UP, and it runs "
        f"the script once per change, one run after the other; a run took {_s(out['script_s'], 2)} s on average "
        "here, most of it the script's `salt-call event.send` (a Salt command line starting). So the UP is notified "
        "only after the runs before it ended: that is the 'UP notified after N active' column. The script writes "
        "its report to its state file before that `salt-call`, and the runner reads the file every 0.5 s right "
        "after a flight: the next node goes within about a second of the UP's notification, its event on the bus "
        "being still on its way.",
        "",
        "The gate's own time is mostly that wait; the Network Manager's notifications, its script and the reads "
        "are the vendor gate's price, paid in every handover when `frontend=` is given.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workdir", help="keep everything (logs, journals, configs) here")
    parser.add_argument("--output", default=str(run.REPO / "docs" / "benchmark-frontend.md"))
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args(argv)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-frontend-"))
    if args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    try:
        out = measure(work)
    finally:
        run.kill_children()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    baseline = None
    raw = sorted((run.RESULTS).glob("bench-*-full.json"))
    if raw:
        with open(raw[-1], encoding="utf-8") as fh:
            full = json.load(fh)
        rolling = full.get("rolling") or {}
        if rolling.get("handover"):
            baseline = dict(
                rolling["handover"], ratio=rolling.get("ratio"), date=(full.get("machine") or {}).get("date")
            )
    Path(args.output).write_text(report(out, baseline), encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
    run.say(f"report: {args.output}")
    return 0 if out["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
