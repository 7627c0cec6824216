"""BENCHMARKS.md and the SVG panels from the raw results of ``bench/run.py``."""

import os

TARGETS = {
    "ratio": 1.10,
    "handover_p95_s": 0.5,
    "scale_s": 2.0,
    "record_bytes": 2_000_000,
    "fleet_ratio": 1.15,
    "fleet_scale_s": 2.0,
    "fleet_record_bytes": 2_000_000,
}
#: The Fleets section's bounds in BENCHMARKS.md (``--only fleet`` replaces what lies between them).
FLEET_BEGIN = "<!-- fleets: begin (bench/run.py --only fleet rewrites this section alone) -->"
FLEET_END = "<!-- fleets: end -->"


def _s(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _met(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def svg_title(results):
    nodes = results["settings"]["nodes"]
    return f"Nodes down and up during the update of {nodes} simulated nodes ({results['machine']['date'][:10]})"


def panels(results):
    out = []
    for key, label in (("rolling", "salt-run rolling.update"), ("naive", "salt -b 1 state.single (naive)")):
        run = results.get(key)
        if not run:
            continue
        out.append(
            {
                "title": f"{label}: {run['wall_s']:.1f} s, {run['builds']} build(s), "
                f"at most {run['max_nodes_down']} node(s) down",
                "t0": run["t_start"],
                "wall_s": run["wall_s"],
                "nodes": sorted(run["nodes"], key=lambda n: int(n["node"][4:]) if n["node"][4:].isdigit() else 0),
            }
        )
    return out


def _rel(path, output):
    return os.path.relpath(path, os.path.dirname(os.path.abspath(output)))


def markdown(results, output, svg, raw):
    m, load, settings = results["machine"], results["load"], results["settings"]
    rolling, naive, sc = results.get("rolling"), results.get("naive"), results.get("scale")
    quick = results["profile"] == "quick"
    lines = [
        "# Benchmarks",
        "",
        (
            "**This is a `--quick` run (small cluster, short delays): a smoke test, not the reference figures.**\n"
            if quick
            else ""
        ),
        "Written by `python bench/run.py` (the Python of the project's virtualenv, e.g. `/work/venv/bin/python "
        "bench/run.py` or `.venv/bin/python bench/run.py`); it overwrites this file, writes the timeline to "
        "`bench/timeline.svg` and the raw figures as JSON to `bench/results/` (not committed). "
        "`python bench/run.py --quick` is a small run (3 minions, short delays, 200-node scale run) that writes "
        "`bench/results/BENCHMARKS-quick.md` instead. `--help` lists the other options (`--nodes`, `--only`, "
        "`--workdir`, ...); `--from-json bench/results/bench-*.json` writes this file and the timeline again from the "
        "raw figures of an earlier run without measuring anything. A full run takes about 7 minutes here"
        + (
            f" (this one: {sum(results.get('phase_seconds', {}).values()) / 60:.1f} min)"
            if results.get("phase_seconds")
            else ""
        )
        + "; it waits (up to 5 minutes) for a 1-minute load "
        "average below 1.5 before it starts. It measures and reports; it does not pass or fail. Every Salt "
        "daemon it starts is stopped before it exits.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| date | {m['date']} |",
        f"| CPU | {m['cpu']} |",
        f"| cores | {m['cores']} (usable by this process: {m.get('cpu_affinity')}) |",
        f"| RAM | {m['ram_gb']} GB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['implementation']} {m['python']} |",
        f"| Salt | {m['salt']} |",
        f"| load average (1, 5, 15 min) at start | {', '.join(map(str, load['load_at_start']))}"
        + (
            f" (waited {load['waited_s']} s for it to drop below {load['limit']}"
            + ("" if load.get("idle") else "; it did not")
            + ")"
            if load.get("limit")
            else ""
        )
        + " |",
        f"| load average at end | {', '.join(map(str, load.get('load_at_end', [])))} |",
        "| bytecode | "
        + (
            "the extension and the simulator compiled before measuring, as an installed package is"
            + (
                " (this machine sets PYTHONDONTWRITEBYTECODE, so nothing would be compiled otherwise)"
                if results.get("bytecode", {}).get("PYTHONDONTWRITEBYTECODE")
                else ""
            )
            if results.get("bytecode")
            else "not recorded"
        )
        + " |",
        "",
        "The machine was shared: other jobs (test suites) may have run during the measurement; the load "
        "averages above are the only record of that.",
        "",
    ]
    if results["errors"]:
        lines += ["**Errors during this run:** " + "; ".join(f"{k}: {v}" for k, v in results["errors"].items()), ""]

    # ---- summary
    lines += ["## Summary", "", "| measure | value | target | |", "|---|---|---|---|"]
    if rolling:
        lines.append(
            f"| rolling update of {settings['nodes']} nodes: wall time / physical limit | "
            f"{_s(rolling['wall_s'], 1)} s / {_s(rolling['physical_limit_s'], 1)} s = "
            f"**{_s(rolling['ratio'], 3)}** | ≤ {TARGETS['ratio']} | "
            f"{_met(rolling['ratio'] is not None and rolling['ratio'] <= TARGETS['ratio'])} |"
        )
        h = rolling["handover"]
        lines.append(
            "| handover latency (active → next node's first action), p50 / p95 / max | "
            + (f"{_s(h['p50'], 3)} / **{_s(h['p95'], 3)}** / {_s(h['max'], 3)} s" if h else "n/a")
            + f" | p95 ≤ {TARGETS['handover_p95_s']} s | "
            + _met(h["p95"] <= TARGETS["handover_p95_s"] if h else None)
            + " |"
        )
        gate = (rolling.get("handover_parts") or {}).get("gate")
        lines.append(
            "| of which the cluster health gate's own time (the driver in its gate before the next node), "
            "mean / p95 / max | "
            + (f"{_s(gate['mean'], 4)} / **{_s(gate['p95'], 4)}** / {_s(gate['max'], 4)} s" if gate else "n/a")
            + " | within the handover | |"
        )
        go = (rolling.get("floors") or {}).get("go_ahead") or {}
        if go.get("median") is not None:
            lines.append(
                "| the floor under the handover's last part: one Salt job (`event.fire`) from its publish to its "
                f"event on the minion's bus, median / max | {go['median']:.3f} / {go['max']:.3f} s | | |"
            )
        lines.append(
            "| the handover and the ratio against the code before the health gate (2026-11-27), same hour | "
            "[docs/benchmark-ab.md](docs/benchmark-ab.md) | | |"
        )
    sweep = results.get("builds_sweep")
    if sweep:
        done = [r for r in sweep if r["status"] == "done"]
        failed = [r for r in sweep if r["status"] != "done"]
        lines.append(
            f"| SIA builds with one group, N = {', '.join(str(r['nodes']) for r in done)} | "
            f"{', '.join(str(r['builds']) for r in done)}"
            + (f" ({len(failed)} rollout(s) did not finish)" if failed else "")
            + " | 1 for every N | "
            f"{_met(bool(done) and all(r['builds'] == 1 for r in done))} |"
        )
    tg = results.get("two_groups")
    if tg:
        lines.append(
            f"| SIA builds with two groups (two kernels), {tg['nodes']} nodes | {tg['builds']} | 2 | "
            f"{_met(tg['builds'] == 2)} |"
        )
    if rolling and naive:
        lines.append(
            f"| naive (`salt -b 1`) / rolling wall time | {_s(naive['wall_s'], 1)} s / "
            f"{_s(rolling['wall_s'], 1)} s = **{_s(naive['wall_s'] / rolling['wall_s'], 2)}** | | |"
        )
        lines.append(f"| builds naive / rolling | {naive['builds']} / {rolling['builds']} | | |")
        lines.append(
            f"| most nodes down at once, naive / rolling | {naive['max_nodes_down']} / "
            f"{rolling['max_nodes_down']} | 1 | "
            f"{_met(naive['max_nodes_down'] <= 1 and rolling['max_nodes_down'] <= 1)} |"
        )
    if sc:
        ns, ws = sc["no_save"], sc["save_per_step"]
        lines.append(
            f"| {sc['nodes']}-node rollout without daemons, logic only (no save) | "
            f"**{_s(ns['seconds'], 2)} s** | ≤ {TARGETS['scale_s']} s | "
            f"{_met(ns['seconds'] <= TARGETS['scale_s'])} |"
        )
        est = "" if ws["complete"] else " (extrapolated, see below)"
        lines.append(
            f"| the same with `RolloutStore.save` after every step, as the runner ({sc['expected_saves']} "
            f"saves) | **{_s(ws['estimated_total_s'], 1)} s**{est} | ≤ {TARGETS['scale_s']} s | "
            f"{_met(ws['estimated_total_s'] <= TARGETS['scale_s'])} |"
        )
        lines.append(
            f"| record size (JSON as saved) | **{ns['record_bytes'] / 1e6:.2f} MB** | ≤ "
            f"{TARGETS['record_bytes'] / 1e6:.0f} MB | {_met(ns['record_bytes'] <= TARGETS['record_bytes'])} |"
        )
    if results.get("fleet"):
        lines += _fleet_summary(results["fleet"])
    lines.append("")

    if svg:
        lines += [
            "## Timeline",
            "",
            f"![nodes down and up]({_rel(svg, output)})",
            "",
            f"One lane per node, time from the start of the command; grey: the application `{'ndbmtd'}` "
            "is stopped (first change to application started), red: the node is down (journal `down` to "
            "`active`), thin bars above: installer runs (dark blue: builds RPMs, light blue: installs "
            "staged RPMs). Hover a bar in a browser for its times.",
            "",
        ]

    lines += [
        "## How the figures are computed",
        "",
        "From the simulator's journals (one JSON-lines file per node, `docs/simulator.md`), in the window of the "
        "command:",
        "",
        "- **wall time**: from just before the command (`salt-run rolling.update ...` or `salt -b 1 ...`) is "
        "started until it exits, including its own start-up, the pre-flight and the final checks;",
        "- a node's **first change**: its first `app-stop` event (or `dis_services stop` command);",
        "- its **in-flight time**: first change → its `active` event (stop, install, link training and what "
        "the state does in between);",
        "- **physical limit**: the sum of the in-flight times plus the duration (`end - time`) of each "
        "`--build-rpm` command: what a perfect driver with zero overhead would need, nodes strictly one after "
        "another;",
        "- **handover latency**: node N's `active` event → node N+1's first change, nodes in the order they "
        "were changed; percentiles are nearest-rank (observed values);",
        "- **health gate's own time**: what the driver spent in the cluster health gate before node N+1 (the "
        "rollout record's `health.gate_s`, the driver's monotonic clock); it is part of the handover;",
        "- **builds**: `sia --build-rpm` commands, plus `sia --install-node` runs without `--use-rpms` (the "
        "installer builds for itself first);",
        "- **nodes down at once**: overlap of the `down` → `active` intervals.",
        "",
    ]

    if rolling:
        lines += _rolling_section(rolling, settings)
    if sweep or tg:
        lines += _builds_section(sweep, tg, naive)
    if naive:
        lines += _naive_section(naive, rolling)
    if sc:
        lines += _scale_section(sc)
    if results.get("fleet") or "fleet" in results.get("phases", []):
        lines += fleet_section(results, output, raw, alone=False).split("\n") + [""]
    lines += [
        "## Raw data",
        "",
        f"`{_rel(raw, output)}` (JSON; the directory is not committed). Work directory "
        f"(logs, journals, configs) was `{results['work']}`"
        + (" (kept)." if results.get("kept") else " (removed at the end; `--keep` or `--workdir` keeps it)."),
        "",
    ]
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def _rolling_section(run, settings):
    d = settings["delays"]
    lines = [
        "## Rolling update",
        "",
        f"A real `salt-master` and {settings['nodes']} `salt-minion` daemons on 127.0.0.1, each minion on its own "
        f"simulated node running the application `ndbmtd`; simulated delays: build {d['build']:g} s, install "
        f"{d['install']:g} s, link training {d['link_training']:g} s. The master has `file_recv: True` and "
        "`peer_run: {'.*': ['expressware_lease.*']}`; the minions use the simulator's service provider "
        "(`expressware_sim.service_provider_config()`) for `service.stop`/`service.start` of the application.",
        "",
        f"```\n{'' if run['command'].startswith('salt') else 'salt-run '}{run['command']}\n```",
        "",
        f"Exit status {run['rc']}, rollout status `{run['status']}`; {run['outcome']['ok']} of "
        f"{run['outcome']['of']} nodes on the target, active, application running"
        + (f" (not: {', '.join(run['outcome']['not_ok'])})" if run["outcome"]["not_ok"] else "")
        + ".",
        "",
        "| | seconds |",
        "|---|---|",
        f"| wall time | {_s(run['wall_s'])} |",
        f"| physical limit | {_s(run['physical_limit_s'])} |",
        f"| ratio | {_s(run['ratio'], 3)} |",
        "",
        "Where the wall time goes:",
        "",
        "| part | seconds |",
        "|---|---|",
    ]
    for part, value in (run.get("breakdown") or {}).items():
        lines.append(f"| {part} | {_s(value)} |")
    if run.get("startup_parts"):
        lines += [
            "",
            "Before the first node, split with the runner's own log (the rollout record):",
            "",
            "| part | seconds |",
            "|---|---|",
        ]
        for part, value in run["startup_parts"].items():
            lines.append(f"| {part} | {_s(value)} |")
    lines += [
        "",
        "Per node (seconds from the start of the command):",
        "",
        "| node | first change | down | installed | active | in flight | down time | handover to next |",
        "|---|---|---|---|---|---|---|---|",
    ]
    t0 = run["t_start"]
    hand = {h["from"]: h["seconds"] for h in run["handovers"]}
    by_name = {n["node"]: n for n in run["nodes"]}
    for name in run["order"]:
        n = by_name[name]
        rel = lambda t: None if t is None else t - t0  # noqa: E731
        lines.append(
            f"| {name} | {_s(rel(n['first_change']))} | {_s(rel(n['down']))} | {_s(rel(n['installed']))} | "
            f"{_s(rel(n['active']))} | {_s(n['in_flight'])} | {_s(n['down_time'])} | "
            f"{_s(hand.get(name), 3)} |"
        )
    parts = run.get("handover_parts")
    if parts:
        keys = list(parts["mean"])
        lines += [
            "",
            "Each handover split with the runner's own log (the rollout record): node N active (journal) "
            "→ N's application started (the state's `wait_active` poll saw it, fired the event with the "
            "node's state) → the runner logs N active (job return and that event received) → the runner "
            "logs N+1 updating (record saved) → N+1's first change (N+1's job was published while N "
            "installed and waits at its gate, checks and installer fetch done: the go-ahead is one "
            "publish of `event.fire`, then the state stops the application).",
            "",
            "| handover | " + " | ".join(keys) + " | (of the checks: health gate) |",
            "|---" * (len(keys) + 2) + "|",
        ]
        for r in parts["rows"]:
            lines.append(
                f"| {r['from']} → {r['to']} | " + " | ".join(_s(r[k], 3) for k in keys) + f" | {_s(r.get('gate'), 4)} |"
            )
        gate = parts.get("gate")
        lines.append(
            "| **mean** | "
            + " | ".join(f"**{_s(parts['mean'][k], 3)}**" for k in keys)
            + f" | **{_s(gate['mean'] if gate else None, 4)}** |"
        )
    h = run["handover"]
    if h:
        lines += [
            "",
            f"Handover latency over {h['n']} handovers: p50 {h['p50']:.3f} s, p95 {h['p95']:.3f} s, "
            f"max {h['max']:.3f} s, mean {h['mean']:.3f} s (target p95 ≤ {TARGETS['handover_p95_s']} s: "
            f"{'met' if h['p95'] <= TARGETS['handover_p95_s'] else 'missed'}).",
        ]
        gate = (parts or {}).get("gate")
        if gate:
            lines += [
                "",
                f"The cluster health gate is on (every member of the cluster active before each node is disrupted; "
                f"with a frontend, its Network Manager's state too): the driver's own time in it per handover, "
                f"from the record's `health.gate_s`, p50 {gate['p50']:.4f} s, p95 {gate['p95']:.4f} s, max "
                f"{gate['max']:.4f} s, mean {gate['mean']:.4f} s (part of 'next node checks' above).",
            ]
    if parts and h:
        ordered = sorted(parts["mean"].items(), key=lambda kv: kv[1], reverse=True)
        total = sum(parts["mean"].values())
        lines += [
            "",
            f"The parts' means add up to {total:.3f} s, {total / TARGETS['handover_p95_s']:.1f} times the "
            "p95 target; the largest are " + ", ".join(f"{k} ({v:.3f} s)" for k, v in ordered[:2]) + ".",
        ]
    ratio = run["ratio"]
    if ratio is not None:
        verdict = "met" if ratio <= TARGETS["ratio"] else "missed"
        lines += ["", f"Ratio wall/limit {ratio:.3f}: target ≤ {TARGETS['ratio']} {verdict}."]
        b = run.get("breakdown") or {}
        over = run["wall_s"] - run["physical_limit_s"]
        pre = (b.get("before the first node (start of the command, pre-flight, builds)") or 0) - (
            b.get("of which builds (--build-rpm)") or 0
        )
        hand = b.get("handovers (sum)") or 0
        tail = b.get("after the last node is active (applications, job return, checks, exit)") or 0
        if over > 0:
            lines += [
                "",
                f"Overhead over the physical limit: {over:.1f} s, of which the handovers "
                f"{hand:.1f} s ({100 * hand / over:.0f} %), before the first node apart from the "
                f"builds {pre:.1f} s ({100 * pre / over:.0f} %), after the last node {tail:.1f} s "
                f"({100 * tail / over:.0f} %). The target allows "
                f"{(TARGETS['ratio'] - 1) * run['physical_limit_s']:.1f} s of overhead at this size.",
            ]
        floors = run.get("floors")
        if floors:
            lines += [
                "",
                f"Measured apart on the same daemons (median of 3): `salt-run` start-up and exit alone "
                f"(`salt-run test.arg`) {floors['salt_run_startup_s']:.2f} s; the pre-flight call "
                f"(`expressware.preflight`, beyond a `test.ping` to as many minions) on one minion "
                f"{floors['preflight_one_s']:.2f} s, on all {floors['nodes']} "
                f"{floors['preflight_all_s']:.2f} s. The {floors['nodes']} minions and their simulated "
                "tools (Python programs, where the real ones are compiled) share this machine's cores, "
                "so the pre-flight grows with the cluster here; on a cluster each node checks itself "
                "on its own CPUs, in parallel.",
            ]
            go = floors.get("go_ahead") or {}
            if go.get("median") is not None:
                lines += [
                    "",
                    f"The floor under 'publish + state run-up', measured apart on the same daemons: one "
                    f"`event.fire` job published to one minion (a go-ahead is one), from the publish to its "
                    f"event on the minion's bus, median {go['median']:.3f} s, max {go['max']:.3f} s over "
                    f"{len(go['samples'])} (`bench/go_floor.py`; the publish call itself "
                    f"{go['publish_call']:.3f} s). That is Salt's own path: the master's publish, the minion's "
                    "receipt, and the new job process the minion starts for every job, which builds its "
                    "loaders again before the function runs. No handover with a go-ahead sent as a Salt job "
                    "can be shorter here.",
                ]
    lines.append("")
    return lines


def _builds_section(sweep, tg, naive):
    lines = ["## SIA builds against the number of nodes", ""]
    if sweep:
        lines += [
            "Rolling updates on the same daemons after the run above, each to a newer version over the "
            "first N nodes (one kernel: one group); the rows after the first with tiny delays.",
            "",
            "| nodes | version | groups | builds (rolling) | builds the naive way would do | wall s | "
            "nodes down at once | status |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in sweep:
            lines.append(
                f"| {r['nodes']} | {r['version']} | {r['groups']} | {r['builds']} | {r['nodes']} | "
                f"{_s(r['wall_s'], 1)} | {r['max_nodes_down']} | {r['status']} |"
            )
        lines.append("")
        for r in sweep:
            if r["status"] != "done":
                lines += [f"The rollout to {r['version']} ended `{r['status']}`: {r.get('reason')}", ""]
    if naive:
        lines += [f"Measured the naive way (below): {naive['builds']} builds for {naive['nodes_changed']} nodes.", ""]
    if tg:
        kernels = ", ".join(f"{v} on `{k}`" for k, v in tg["kernels"].items())
        lines += [
            f"Two groups: {tg['nodes']} nodes, {kernels} (simulated node kernel and the minion's "
            f"`kernelrelease` grain), one `rolling.update` to {tg['version']}: {tg['groups']} groups, "
            f"**{tg['builds']} builds** (on {', '.join(tg['builders'])}), status `{tg['status']}`, "
            f"at most {tg['max_nodes_down']} node(s) down.",
            "",
        ]
    return lines


def _naive_section(naive, rolling):
    lines = [
        "## The naive way, for comparison",
        "",
        "A fresh cluster of the same size and delays (new nodes, new daemons), every node updated by Salt's "
        "batch mode, one minion at a time; nothing is staged, so each node's installer builds its own RPMs "
        "while the node is down. `lease=False`: `salt -b 1` already serialises the nodes (with the lease the "
        "state would add a `publish.runner` round trip per node).",
        "",
        f"```\n{naive['command']}\n```",
        "",
        f"Exit status {naive['rc']}; {naive['outcome']['ok']} of {naive['outcome']['of']} nodes on the target, "
        "active, application running.",
        "",
        "| | naive | rolling | naive / rolling |",
        "|---|---|---|---|",
    ]
    rows = [
        ("wall time (s)", naive["wall_s"], rolling and rolling["wall_s"]),
        ("physical limit (s)", naive["physical_limit_s"], rolling and rolling["physical_limit_s"]),
        ("builds", naive["builds"], rolling and rolling["builds"]),
        ("most nodes down at once", naive["max_nodes_down"], rolling and rolling["max_nodes_down"]),
        (
            "mean down time per node (s)",
            (naive["down_time"] or {}).get("mean"),
            rolling and (rolling["down_time"] or {}).get("mean"),
        ),
        ("handover p50 (s)", (naive["handover"] or {}).get("p50"), rolling and (rolling["handover"] or {}).get("p50")),
        ("handover p95 (s)", (naive["handover"] or {}).get("p95"), rolling and (rolling["handover"] or {}).get("p95")),
    ]
    for label, a, b in rows:
        ratio = (a / b) if (isinstance(a, (int, float)) and isinstance(b, (int, float)) and b) else None
        fmt = str if label in ("builds", "most nodes down at once") else _s
        lines.append(
            f"| {label} | {fmt(a) if a is not None else 'n/a'} | {fmt(b) if b is not None else 'n/a'} | {_s(ratio)} |"
        )
    lines.append("")
    return lines


def _scale_section(sc):
    ns, ws = sc["no_save"], sc["save_per_step"]
    lines = [
        f"## Scale without daemons: {sc['nodes']} nodes",
        "",
        "`bench/scale.py` drives the repository's `_utils/expressware_rollout.py` through a made-up cluster of "
        f"{sc['nodes']} nodes in {sc['groups']} groups (kernels), the way `_runners/rolling.py` does: "
        "`new_record`, then `next_action` until the end, per node `mark_phase` (stopping) + save, the three "
        "phase events of the state (`mark_phase` + save each), `mark_active`, the progress lines into the "
        "record's log, a save after every action. No Salt, no sleeping.",
        "",
        "| variant | seconds | saves | record |",
        "|---|---|---|---|",
        f"| logic only (no save) | {ns['seconds']:.3f} | 0 | {ns['record_bytes'] / 1e6:.3f} MB as saved "
        f"(`RolloutStore`'s encoding), {ns['record_bytes_compact'] / 1e6:.3f} MB as plain compact JSON |",
    ]
    if ws["complete"]:
        lines.append(
            f"| `RolloutStore.save` after every step | {ws['seconds']:.2f} | {ws['saves']} | "
            f"mean save {ws['mean_save_s'] * 1000:.1f} ms |"
        )
    else:
        lines.append(
            f"| `RolloutStore.save` after every step | **≈ {ws['estimated_total_s']:.0f} (extrapolated)** | "
            f"{sc['expected_saves']} | mean save {ws['mean_save_s'] * 1000:.1f} ms |"
        )
        lines += [
            "",
            f"The save-per-step run was stopped after its budget of {sc['budget_s']:.0f} s: "
            f"{ws['saves']} saves, {ws['nodes_done']} of {sc['nodes']} nodes done, "
            f"{ws['save_seconds']:.1f} s of it in `RolloutStore.save`. The total is the logic's measured "
            f"time plus {sc['expected_saves']} saves at the measured mean "
            f"({ws['mean_save_s'] * 1000:.1f} ms; the record has all {sc['nodes']} nodes from the "
            "first save on, so its size hardly changes during the rollout).",
        ]
    lines += [
        "",
        "One save of the final record, and the record written other ways (best of 5; a what-if):",
        "",
        "| write | ms |",
        "|---|---|",
    ]
    for label, seconds in sc["encode_costs"].items():
        lines.append(f"| {label} | {seconds * 1000:.1f} |")
    for key, title in (("profile_save", "save per step"), ("profile_no_save", "logic only")):
        prof = sc.get(key)
        if not prof:
            continue
        lines += [
            "",
            f"cProfile, {title} ({prof['nodes_done']} of {sc['nodes']} nodes"
            + ("" if prof["complete"] else ", stopped at half the budget")
            + f", {prof['wall_s_under_profiler']:.2f} s under the profiler):",
            "",
            "| part (cumulative) | seconds |",
            "|---|---|",
        ]
        for part, seconds in prof["cumulative"].items():
            if seconds:
                lines.append(f"| {part} | {seconds:.3f} |")
        lines += ["", "| function (most own time) | calls | own s | cumulative s |", "|---|---|---|---|"]
        for row in prof["top_own_time"][:8]:
            lines.append(f"| `{row['function']}` | {row['calls']} | {row['own_s']:.3f} | {row['cumulative_s']:.3f} |")
    lines += ["", "### Where the time goes", ""] + _scale_findings(sc) + [""]
    return lines


def _scale_findings(sc):
    ns = sc["no_save"]
    ps, pn = sc.get("profile_save"), sc.get("profile_no_save")
    out = []
    if pn:
        na = pn["cumulative"].get("next_action", 0)
        out.append(
            f"- **Logic only** ({ns['seconds']:.2f} s for {sc['nodes']} nodes): `next_action` takes "
            f"{na:.2f} s of {pn['wall_s_under_profiler']:.2f} s under the profiler. Each call scans every node "
            "of the order twice (the count of `active` nodes for the canary, the list of nodes still to do) "
            "to return the first one: O(N) per call, O(N²) per rollout "
            f"({sc['nodes']} calls × {sc['nodes']} nodes × 2)."
        )
    if ps:
        dumps = ps["cumulative"].get("json.dumps", 0)
        save = ps["cumulative"].get("RolloutStore.save", 0)
        fsync = ps["cumulative"].get("os.fsync (in write_json)", 0)
        out.append(
            f"- **Saving**: `RolloutStore.save` is {save:.2f} s of {ps['wall_s_under_profiler']:.2f} s under the "
            f"profiler (`json.dumps` in all {dumps:.2f} s, `os.fsync` {fsync:.3f} s). A node's step is one line "
            "appended to the rollout's journal (`save_node`, O(1) whatever the cluster's size); the whole record "
            f"({ns['record_bytes'] / 1e6:.2f} MB as stored) is rewritten at the rollout's start, its plan, its "
            "end, and every 500 journal lines (`COMPACT_EVERY`): a few dozen rewrites for 2,000 nodes."
        )
    return out


# ---------------------------------------------------------------------------
# Fleets
# ---------------------------------------------------------------------------


def _fleet_summary(fl):
    """The Fleets rows of a summary table."""
    rows = []
    run, line, sc, ad = fl.get("fleet_run"), fl.get("one_line"), fl.get("scale"), fl.get("adapters")
    if run:
        k = len(run["clusters"])
        size = len(next(iter(run["clusters"].values()))["nodes"])
        rows.append(
            f"| fleet of {k} clusters of {size} (real daemons): wall / the slowest cluster's own physical limit | "
            f"{_s(run['wall_s'], 1)} s / {_s(run['slowest_limit_s'], 1)} s = **{_s(run['ratio'], 3)}** | "
            f"≤ {TARGETS['fleet_ratio']} | "
            f"{_met(run['ratio'] is not None and run['ratio'] <= TARGETS['fleet_ratio'])} |"
        )
        per = max((c["max_nodes_down"] for c in run["clusters"].values()), default=None)
        rows.append(
            f"| most nodes down at once: the fleet / in any one cluster | {run['max_nodes_down']} / {per} | "
            f"1 per cluster | {_met(per is not None and per <= 1)} |"
        )
        if line:
            rows.append(
                f"| the same {k * size} nodes walked in one line (one cluster) / as a fleet: wall | "
                f"{_s(line['wall_s'], 1)} s / {_s(run['wall_s'], 1)} s = **{_s(line['wall_s'] / run['wall_s'], 2)}** "
                "| | |"
            )
    if sc:
        ns, ws = sc["no_save"], sc["with_saves"]
        target = TARGETS["fleet_scale_s"]
        rows.append(
            f"| {sc['nodes']} nodes in {sc['clusters']} clusters without daemons: plan + walk, logic only | "
            f"**{_s(ns['seconds'], 2)} s** | ≤ {target} s | {_met(ns['seconds'] <= target)} |"
        )
        rows.append(
            f"| the same with the runner's saves (rollouts, leases, fleet record), one thread | "
            f"**{_s(ws['seconds'], 1)} s** | ≤ {target} s | {_met(ws['seconds'] <= target)} |"
        )
        wt = sc.get("with_saves_threads")
        if wt:
            rows.append(
                f"| the same, a thread per cluster as in the runner (their saves overlap) | "
                f"**{_s(wt['seconds'], 1)} s** | ≤ {target} s | {_met(wt['seconds'] <= target)} |"
            )
        limit = TARGETS["fleet_record_bytes"]
        rows.append(
            f"| records on disk after it: the fleet's record / all (fleet + {sc['clusters']} rollouts) | "
            f"{ws['fleet_record_bytes'] / 1e6:.3f} MB / **{ws['bytes_on_disk'] / 1e6:.2f} MB** | "
            f"≤ {limit / 1e6:.0f} MB | {_met(ws['fleet_record_bytes'] <= limit)} / "
            f"{_met(ws['bytes_on_disk'] <= limit)} |"
        )
    if ad:
        p = ad["process"]
        m = ad["master"]["per_cluster"]
        rows.append(
            f"| per cluster in flight ({ad['adapters']} at once), the runner's process: threads / descriptors "
            f"(sockets) / memory | {_s(p['threads (OS)']['per_cluster'], 1)} / "
            f"{_s(p['open descriptors']['per_cluster'], 1)} ({_s(p['sockets']['per_cluster'], 1)}) / "
            f"{p['RSS (kB)']['per_cluster'] / 1024:.2f} MiB | | |"
        )
        rows.append(
            f"| the same, the master's processes: descriptors (sockets) / memory | {_s(m['fds'], 1)} "
            f"({_s(m['sockets'], 1)}) / {m['rss_kb'] / 1024:.2f} MiB | | |"
        )
    return rows


def splice_fleet(text, section):
    """``text`` (a BENCHMARKS.md) with its Fleets section replaced by ``section``, or ``section`` put before
    "## Raw data" (or at the end) when it has none."""
    begin, end = text.find(FLEET_BEGIN), text.find(FLEET_END)
    if begin >= 0 and end > begin:
        return text[:begin] + section + text[end + len(FLEET_END) :]
    raw = text.find("\n## Raw data")
    if raw >= 0:
        return text[: raw + 1] + section + "\n\n" + text[raw + 1 :]
    return text.rstrip("\n") + "\n\n" + section + "\n"


def fleet_section(results, output, raw, alone=True):
    """The Fleets section, between its markers. ``alone``: written by ``--only fleet`` into a report whose other
    sections come from another run, so it says its own date, load and raw data."""
    fl = results.get("fleet") or {}
    m, load = results["machine"], results["load"]
    lines = [FLEET_BEGIN, "## Fleets", ""]
    if alone:
        lines += [
            f"Measured {m['date']} by `python bench/run.py --only fleet` (this section only; the sections above "
            f"come from their own run). Salt {m['salt']}, Python {m['python']}, {m['cores']} cores. Load average "
            f"(1, 5, 15 min) at start {', '.join(map(str, load['load_at_start']))}, at end "
            f"{', '.join(map(str, load.get('load_at_end', [])))}"
            + (f" (waited {load['waited_s']} s for it to drop below {load['limit']}" if load.get("limit") else "")
            + ("" if not load.get("limit") else ("" if load.get("idle") else "; it did not") + ")")
            + f". Raw data: `{_rel(raw, output)}`.",
            "",
        ]
        if results.get("errors"):
            lines += ["**Errors during this run:** " + "; ".join(f"{k}: {v}" for k, v in results["errors"].items()), ""]
        lines += ["| measure | value | target | |", "|---|---|---|---|"] + _fleet_summary(fl) + [""]
    if not fl:
        lines += ["The fleet phase did not run to its figures (see the errors above).", "", FLEET_END]
        return "\n".join(lines)
    if fl.get("fleet_run"):
        lines += _fleet_daemons(fl, results["settings"], results.get("load"))
    if fl.get("scale"):
        lines += _fleet_scale(fl["scale"])
    if fl.get("adapters"):
        lines += _fleet_adapters(fl["adapters"])
    lines.append(FLEET_END)
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def _fleet_daemons(fl, settings, results_load=None):
    run, line = fl["fleet_run"], fl.get("one_line")
    d = fl["layout"]["delays"]
    k = len(run["clusters"])
    size = len(next(iter(run["clusters"].values()))["nodes"])
    lines = [
        f"### Real daemons: {k} clusters of {size}",
        "",
        f"A real `salt-master` and {k * size} `salt-minion` daemons on 127.0.0.1, each on a simulated node running "
        f"`ndbmtd`, the rolling phase's delays (build {d['build']:g} s, install {d['install']:g} s, link training "
        f"{d['link_training']:g} s); every minion's grain `expressware:cluster` (its minion config) puts it in "
        + ", ".join(f"`{c}` ({', '.join(v['nodes'])})" for c, v in run["clusters"].items())
        + ". All on one kernel: one build group for the whole fleet, built once (`SharedBuilds`), the other "
        "clusters' builders receive its RPMs. One command over all of them:",
        "",
        f"```\n{run['command']}\n```",
        "",
        f"Exit status {run['rc']}, fleet `{run.get('fleet')}` `{run['status']}` (clusters: "
        + ", ".join(f"{c} {s}" for c, s in sorted((run.get("statuses") or {}).items()))
        + f"); {run['outcome']['ok']} of {run['outcome']['of']} nodes on the target, active, application running.",
        "",
        "Each cluster's **own physical limit** is the rolling phase's physical limit over its own nodes' journals: "
        "the sum of its nodes' in-flight times plus its own `--build-rpm` runs (a cluster that received the fleet's "
        "RPMs has none). Were the clusters walked perfectly side by side, the fleet's wall time would be the "
        "slowest cluster's limit (ratio 1.0); walked one after another, about the sum of the limits.",
        "",
        "| cluster | nodes | builds | in flight (sum) s | own physical limit s | first change s | last active s | "
        "most down at once |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c, v in run["clusters"].items():
        lines.append(
            f"| {c} | {len(v['nodes'])} | {v['builds']} | {_s(v['in_flight_s'])} | {_s(v['physical_limit_s'])} | "
            f"{_s(v['first_change_s'])} | {_s(v['last_active_s'])} | {v['max_nodes_down']} |"
        )
    over = run["wall_s"] - run["slowest_limit_s"]
    per_down = max(v["max_nodes_down"] for v in run["clusters"].values())
    lines += [
        "",
        f"Fleet wall time {_s(run['wall_s'])} s; the slowest cluster's own limit {_s(run['slowest_limit_s'])} s "
        f"(`{run['slowest_cluster']}`): ratio **{_s(run['ratio'], 3)}** (target ≤ {TARGETS['fleet_ratio']}: "
        f"{'met' if run['ratio'] and run['ratio'] <= TARGETS['fleet_ratio'] else 'missed'}); the sum of the "
        f"clusters' limits, what a queue of clusters would need at least, is {_s(run['sum_of_limits_s'])} s. "
        f"Overhead over the slowest limit: {over:.1f} s. At most {run['max_nodes_down']} nodes were down at once in "
        f"the fleet, at most {per_down} per cluster.",
    ]
    if run.get("ratio_with_fleet_builds") is not None:
        lines += [
            "",
            f"A cluster that receives the fleet's RPMs waits for another cluster's build ({_s(run['fleet_builds_s'])} "
            "s of `--build-rpm` in the fleet) before its first node: counting the fleet's builds in every cluster's "
            f"limit, the slowest is {_s(max(v['limit_with_fleet_builds_s'] for v in run['clusters'].values()))} s "
            f"and the ratio {_s(run['ratio_with_fleet_builds'], 3)}.",
        ]
    rb = run.get("records_bytes")
    if rb and rb["rollouts"]:
        lines += [
            "",
            f"The records this fleet left in the master's cache: the fleet's {rb['fleet'] / 1e3:.1f} kB, its "
            f"clusters' rollouts {', '.join(f'{b / 1e3:.1f}' for b in rb['rollouts'])} kB ({size} nodes each).",
        ]
    lines += ["", "Where each cluster's time goes (seconds, from the start of the command):", ""]
    parts = [k for k in (next(iter(run["clusters"].values())).get("breakdown") or {})]
    if parts:
        lines += ["| cluster | " + " | ".join(parts) + " |", "|---" * (len(parts) + 1) + "|"]
        for c, v in run["clusters"].items():
            b = v.get("breakdown") or {}
            lines.append(f"| {c} | " + " | ".join(_s(b.get(k)) for k in parts) + " |")
    hp = {c: v.get("handover_parts") for c, v in run["clusters"].items() if v.get("handover_parts")}
    if hp:
        keys = list(next(iter(hp.values())))
        lines += [
            "",
            "Each cluster's handovers split with its rollout's own log as in the rolling phase (means, seconds; "
            "`gate`: the cluster health gate's own time, part of 'next node checks'):",
            "",
            "| cluster | " + " | ".join(keys) + " |",
            "|---" * (len(keys) + 1) + "|",
        ]
        for c, hparts in hp.items():
            lines.append(f"| {c} | " + " | ".join(_s(hparts.get(k), 3) for k in keys) + " |")
        if line and line.get("handover_parts"):
            lines.append(
                "| *the one-line walk below* | " + " | ".join(_s(line["handover_parts"].get(k), 3) for k in keys) + " |"
            )
        lines += [
            "",
            "'next node checks' holds the wait for the next node's prepared job to be ready at its gate (its checks "
            "and installer fetch, started while the node before it was down): in the fleet, every cluster's next "
            "node does that at once, with the other clusters' nodes installing, on the same 2 cores.",
        ]
    sp = {c: v.get("startup_parts") for c, v in run["clusters"].items() if v.get("startup_parts")}
    if sp:
        keys = list(next(iter(sp.values())))
        lines += [
            "",
            "Before each cluster's first node, split with its rollout's log (seconds):",
            "",
            "| cluster | " + " | ".join(keys) + " |",
            "|---" * (len(keys) + 1) + "|",
        ]
        for c, sparts in sp.items():
            lines.append(f"| {c} | " + " | ".join(_s(sparts.get(k)) for k in keys) + " |")
        if line and line.get("startup_parts"):
            lines.append(
                "| *the one-line walk below* | " + " | ".join(_s(line["startup_parts"].get(k)) for k in keys) + " |"
            )
    lines.append("")
    if line:
        lines += [
            "**Today's one line, for comparison.** On the same daemons, the nodes made anew on the old version "
            "(journals too), a pillar `expressware:cluster: line` for every minion (the master's word comes before "
            f"the grain; it matched {line['pillar_matched']} minions) makes them one cluster, walked one node at a "
            "time:",
            "",
            f"```\n{line['command']}\n```",
            "",
            f"Exit status {line['rc']}, rollout status `{line['status']}`"
            + (
                " (**it ran as a fleet: the pillar did not take**)"
                if line.get("a_fleet")
                else f" (cluster `{line.get('cluster')}`)"
            )
            + f"; {line['outcome']['ok']} of {line['outcome']['of']} nodes on the target.",
            "",
            "| | fleet | one line | one line / fleet |",
            "|---|---|---|---|",
            f"| wall time s | {_s(run['wall_s'])} | {_s(line['wall_s'])} | **{_s(line['wall_s'] / run['wall_s'])}** |",
            f"| physical limit s (fleet: the slowest cluster's) | {_s(run['slowest_limit_s'])} | "
            f"{_s(line['physical_limit_s'])} | {_s(line['physical_limit_s'] / run['slowest_limit_s'])} |",
            f"| wall / limit | {_s(run['ratio'], 3)} | {_s(line['ratio'], 3)} | |",
            f"| builds | {run['builds']} | {line['builds']} | |",
            f"| most nodes down at once | {run['max_nodes_down']} | {line['max_nodes_down']} | |",
            f"| handover mean s | {_s(_fleet_handover_mean(run), 3)} | "
            f"{_s((line.get('handover') or {}).get('mean'), 3)} | |",
            "",
        ]
    lines += _fleet_reading(run, line, results_load)
    return lines


def _fleet_handover_mean(run):
    pairs = [(v["handover"]["n"], v["handover"]["mean"]) for v in run["clusters"].values() if v.get("handover")]
    count = sum(n for n, _ in pairs)
    return sum(n * mean for n, mean in pairs) / count if count else None


def _fleet_reading(run, line, load):
    """Where the fleet's time over the slowest cluster's limit went, from the figures."""
    slowest = run["clusters"][run["slowest_cluster"]]
    b = slowest.get("breakdown") or {}
    before = (b.get("before the first node (start of the command, pre-flight, builds)") or 0) - (
        b.get("of which builds (--build-rpm)") or 0
    )
    hand = b.get("handovers (sum)") or 0
    tail = b.get("after the last node is active (applications, job return, checks, exit)") or 0
    over = run["wall_s"] - run["slowest_limit_s"]
    if over <= 0:
        return []
    text = (
        f"Reading it: of the {over:.1f} s over the slowest cluster's limit (`{run['slowest_cluster']}`), "
        f"{before:.1f} s are before its first node apart from the build itself (the command's start-up, the "
        f"pre-flight of every cluster at once, the build's set-up and the push of the RPMs), {hand:.1f} s its "
        f"handovers ({_s(_fleet_handover_mean(run), 2)} s each on average in the fleet"
    )
    if line and line.get("handover"):
        text += f", {_s(line['handover']['mean'], 2)} s in the one-line walk on the same daemons"
    text += (
        f") and {tail:.1f} s after its last node. These costs are per cluster and do not shrink with it: a "
        f"{len(slowest['nodes'])}-node cluster's limit of {_s(run['slowest_limit_s'], 1)} s does not amortise them. "
        "The machine has 2 cores for the master, the runner, every minion and the simulated tools (Python "
        "programs), which a real cluster's nodes run on their own CPUs"
    )
    if load:
        text += (
            f"; its load average was {load['load_at_start'][0]} at the start of the phase and "
            f"{(load.get('load_at_end') or ['?'])[0]} at its end (other jobs on this shared machine)"
        )
    return [text + ".", ""]


def _fleet_scale(sc):
    ns, ws = sc["no_save"], sc["with_saves"]
    lines = [
        f"### Without daemons: {sc['nodes']} nodes in {sc['clusters']} clusters of {sc['size']}",
        "",
        "`bench/fleet_scale.py` plans and walks a made-up fleet with the repository's `_utils/`: the plan as the "
        "runner makes it (`group_by_cluster`, `plan_waves`, `new_fleet`, then per cluster `new_record` from "
        "made-up pre-flight facts), the walk with every cluster in flight at once (`parallel` unset), interleaved: "
        "each tick every running cluster takes its next step of the driver's loop (`next_action`, `mark_prepared`, "
        "`mark_built`/`mark_staged`, per node `mark_phase` ×4, `clear_gate`, `mark_active`, `finish`) and the "
        "fleet's `startable`/`mark_started`/`mark_ended`/`finish` as `FleetRun.run` calls them. With saves: "
        "every save the runner makes, in a fresh master cache (`RolloutStore.save`/`save_node`/`save_changes` as "
        "the driver calls "
        "them, the lease taken and released per cluster, `FleetStore.save` per cluster started and ended). Two build "
        "groups (clusters on two kernels in turn), each built once for the fleet. No Salt, no sleeping. In one "
        "thread (the ticks), then again with a "
        "thread per cluster, as the runner has them (each cluster's steps run to its end in its thread, the "
        "fleet's loop takes the ended ones from a queue as `FleetRun.run` does).",
        "",
        "| variant | plan + walk s | of which plan s | saves | on disk |",
        "|---|---|---|---|---|",
        f"| logic only | **{ns['seconds']:.3f}** | {ns['plan_s']:.3f} | 0 | |",
        f"| with the runner's saves | **{ws['seconds']:.2f}** | {ws['plan_s']:.3f} | "
        + ", ".join(f"{v} {k}" for k, v in ws["saves"].items())
        + f" | {ws['bytes_on_disk'] / 1e6:.2f} MB in {ws['files']} files; the fleet's record "
        f"{ws['fleet_record_bytes'] / 1e3:.0f} kB |",
    ]
    wt = sc.get("with_saves_threads")
    if wt:
        lines.append(
            f"| with the runner's saves, a thread per cluster (`FleetRun._walk`; the fleet's loop in the main thread) "
            f"| **{wt['seconds']:.2f}** | {wt['plan_s']:.3f} | the same | {wt['bytes_on_disk'] / 1e6:.2f} MB |"
        )
    lines += [
        "",
        f"One small file written and fsync'ed in the same directory took {sc['fsync_s'] * 1000:.1f} ms here "
        "(the machine's disk, shared). Targets: plan + walk ≤ "
        f"{TARGETS['fleet_scale_s']} s ({'met' if ns['seconds'] <= TARGETS['fleet_scale_s'] else 'missed'} by the "
        f"logic, {'met' if ws['seconds'] <= TARGETS['fleet_scale_s'] else 'missed'} with the saves in one thread"
        + (
            f", {'met' if wt['seconds'] <= TARGETS['fleet_scale_s'] else 'missed'} with a thread per cluster"
            if wt
            else ""
        )
        + "); records ≤ "
        f"{TARGETS['fleet_record_bytes'] / 1e6:.0f} MB (the fleet's record: "
        f"{'met' if ws['fleet_record_bytes'] <= TARGETS['fleet_record_bytes'] else 'missed'}; all the records of "
        f"the fleet together: {'met' if ws['bytes_on_disk'] <= TARGETS['fleet_record_bytes'] else 'missed'}, "
        f"{ws['bytes_on_disk'] / sc['clusters'] / 1e3:.1f} kB per cluster).",
        "",
    ]
    for key, title in (("profile_save", "with saves"), ("profile_no_save", "logic only")):
        prof = sc.get(key)
        if not prof:
            continue
        lines += [
            f"cProfile, {title} ({prof['wall_s_under_profiler']:.2f} s under the profiler):",
            "",
            "| part (cumulative) | seconds |",
            "|---|---|",
        ]
        for part, seconds in prof["cumulative"].items():
            if seconds:
                lines.append(f"| {part} | {seconds:.3f} |")
        lines += ["", "| function (most own time) | calls | own s | cumulative s |", "|---|---|---|---|"]
        for row in prof["top_own_time"][:10]:
            lines.append(f"| `{row['function']}` | {row['calls']} | {row['own_s']:.3f} | {row['cumulative_s']:.3f} |")
        lines.append("")
    lines += ["Where the time goes:", ""] + _fleet_scale_findings(sc) + [""]
    return lines


def _fleet_scale_findings(sc):
    ns, ws = sc["no_save"], sc["with_saves"]
    ps = sc.get("profile_save")
    out = [
        f"- **The logic** ({ns['seconds']:.2f} s for {sc['nodes']} nodes, {ns['ticks']} ticks) is within the target. "
        "`startable` looks at every cluster of the wave (and `running` at every cluster of the fleet) at each call, "
        "and `FleetRun._run` calls it once per turn of its loop: O(clusters²) per fleet at worst, small at 500 "
        "clusters."
    ]
    if ps:
        c = ps["cumulative"]
        fsyncs = next((r["calls"] for r in ps["top_own_time"] if "posix.fsync" in r["function"]), None)
        out.append(
            "- **The saves**: "
            + (f"{fsyncs} " if fsyncs is not None else "")
            + "files rewritten whole and fsync'ed (`write_json`: the rollout's record at its start, its plan, its "
            f"end ({ws['saves']['rollout save'] // sc['clusters']} calls of `RolloutStore.save` per cluster; one "
            "that would write the same file again, apart from its `updated` time, writes nothing), its lease "
            "once, the fleet's record "
            "once per turn of `FleetRun._run`'s loop: after starting every startable cluster, after taking every "
            "cluster that ended meanwhile), and each costs about one fsync of this disk "
            f"(os.fsync {c.get('os.fsync', 0):.1f} s of {ps['wall_s_under_profiler']:.1f} s under the profiler). "
            f"`FleetStore.save` ({c.get('FleetStore.save', 0):.1f} s) writes the whole fleet record "
            f"({ws['fleet_record_bytes'] / 1e3:.0f} kB at {sc['clusters']} clusters) "
            f"{ws['saves']['fleet save']} times. The per-node steps (`save_node`) and a group built or staged "
            "(`save_changes`: the group and its nodes) are a line appended to the rollout's journal, written "
            f"through without fsync: cheap ({c.get('RolloutStore.save_node', 0):.1f} s for "
            f"{ws['saves']['rollout save_node']} node steps)."
        )
        wt = sc.get("with_saves_threads")
        if wt:
            out.append(
                f"- With a thread per cluster ({wt['seconds']:.2f} s against {ws['seconds']:.2f} s in one thread) "
                f"every cluster's steps run back to back in {sc['clusters']} threads that take the GIL in turn; "
                "fsync releases it, so their saves overlap, but the Python work between them does not. In the "
                "runner those threads spend their time waiting for Salt (a node's flight takes minutes on a real "
                "cluster), so this is the cost of every cluster's record work crowded into a few seconds."
            )
        out.append(
            "- What is written with an fsync is what says where a cluster stands: its rollout's record at its "
            "start (who holds the lease, before the pre-flight), its plan and its end, and its lease. A node's "
            "step or a group built or staged goes to the journal (resume does a lost one again: idempotent)."
        )
    parts = ws.get("rollout_record_parts")
    if parts:
        total = sum(parts.values()) or 1
        biggest = sorted(parts.items(), key=lambda kv: kv[1], reverse=True)[:4]
        out.append(
            f"- **A cluster's record** ({total / 1e3:.1f} kB as stored, `RolloutStore`'s compact JSON): "
            + ", ".join(f"`{k}` {v / 1e3:.1f} kB ({100 * v / total:.0f} %)" for k, v in biggest)
            + f". Its log has {ws.get('rollout_record_log_lines')} lines for {sc['size']} nodes (each step once: "
            "the core's `mark_phase`/`mark_active` log them, the driver's progress line does not again)."
        )
    out.append(
        f"- **Records**: on disk, about {ws['bytes_on_disk'] / sc['clusters'] / 1e3:.1f} kB per cluster (its "
        f"rollout's record of {sc['size']} nodes, its log, its arguments and options; a share of the fleet's), the "
        "fleet's record "
        f"{ws['fleet_record_bytes'] / 1e3:.0f} kB: the fleet's own record is far within 2 MB; all of a fleet's "
        "records together grow with the clusters (the records are one file per rollout; `rolling.status` of a "
        "fleet reads them all)."
    )
    return out


def _fleet_adapters(ad):
    p, mst = ad["process"], ad["master"]
    lines = [
        f"### What a cluster in flight costs ({ad['adapters']} at once)",
        "",
        f"A fleet's runner drives each cluster in flight in a thread of its own with its own Salt adapter "
        f"(`expressware_salt.SaltAdapter`: a `LocalClient` and a master event listener). {ad['adapters']} such "
        "threads in the benchmark's process, on the master above: each opens its adapter, makes one call through "
        "it (`test.ping` to one minion, as a driver's first call opens the client's request channel), then waits "
        "on `get_event`. One adapter was opened and closed first (imports and one-time set-up not counted). "
        f"Opening all {ad['adapters']} took {ad['opened_s']:.1f} s"
        + (f"; errors: {'; '.join(ad['errors'][:5])}" if ad["errors"] else "")
        + ".",
        "",
        "| the runner's process | before | with them open | per cluster |",
        "|---|---|---|---|",
    ]
    for label, v in p.items():
        if label == "RSS (kB)":
            lines.append(
                f"| memory (RSS) | {v['before'] / 1024:.1f} MiB | {v['with'] / 1024:.1f} MiB | "
                f"**{v['per_cluster'] / 1024:.2f} MiB** |"
            )
        else:
            lines.append(f"| {label} | {v['before']} | {v['with']} | **{v['per_cluster']:.2f}** |")
    after = ad["after_close"]
    lines += [
        "",
        f"After they were closed: {after['threads (OS)']} threads, {after['open descriptors']} descriptors "
        f"({after['sockets']} sockets), {after['RSS (kB)'] / 1024:.1f} MiB.",
        "",
        f"The master's side ({mst['processes']} processes in the master's session; the processes whose descriptors "
        "changed):",
        "",
        "| master process | descriptors | sockets | RSS kB |",
        "|---|---|---|---|",
    ]
    for row in mst["changed"]:
        lines.append(
            f"| `{row['name'][:90]}` | {row.get('fds', 0):+d} | {row.get('sockets', 0):+d} | "
            f"{row.get('rss_kb', 0):+d} |"
        )
    t, pc = mst["total"], mst["per_cluster"]
    lines += [
        f"| **all, per cluster** | **{pc['fds']:.2f}** | **{pc['sockets']:.2f}** | **{pc['rss_kb']:.0f}** |",
        "",
        f"In total the master held {t['fds']:+d} descriptors ({t['sockets']:+d} sockets) and {t['rss_kb'] / 1024:+.1f} "
        "MiB with the adapters open (the memory of the master's processes moves with its own work too). Only "
        + (", ".join(f"`{r['name'].split()[-1]}`" for r in mst["changed"]) or "no process")
        + " held more descriptors: the event publisher keeps one connection per listener (each adapter's "
        "subscription to the master's events); the clients' requests (publish, returns) hold none between calls. "
        f"After closing: {ad['master_after_close']['fds']:+d} descriptors against before.",
        "",
    ]
    return lines
