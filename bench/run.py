#!/usr/bin/env python3
"""Benchmarks of the rolling eXpressWare update: ``python bench/run.py`` (``--quick`` for a small run).

Runs, in one go:

1. **rolling**: a real ``salt-master`` and N ``salt-minion`` daemons on loopback, each on a simulated node
   running the application ``ndbmtd``, realistic simulated delays; ``salt-run rolling.update``; wall time vs the
   physical limit from the journals, handover latency, builds, nodes down. Then, on the same daemons with tiny
   delays, rollouts to further versions over 1, 2, 4, ... nodes: builds against the number of nodes.
2. **naive**: a fresh cluster of N nodes (some on another kernel) and ``salt -b 1 '*' state.single
   expressware.installed ...``; then one ``rolling.update`` over both kernels (two groups: two builds).
3. **scale**: ``expressware_rollout`` + ``RolloutStore`` driven through a 2,000-node rollout without daemons.
4. **fleet**: a fleet's logic without daemons (2,000 nodes in 500 clusters, ``bench/fleet_scale.py``); then real
   daemons, 3 clusters of 3 minions (the grain ``expressware:cluster``): one ``rolling.update`` over all of them
   against the slowest cluster's own physical limit, the same nodes (reset) walked as one cluster (a pillar puts
   them all in one); and 50 Salt adapters open at once in this process (``bench/fleet.py``): what a cluster in
   flight costs the runner's process and the master.

and writes ``BENCHMARKS.md`` (overwritten; ``--only fleet`` replaces only its "Fleets" section), the timeline SVG
and the raw JSON under ``bench/results/``.
It measures and reports; it does not pass or fail. Every daemon it starts is stopped before it exits
(also on errors, Ctrl-C and SIGTERM). Run it with the Python that has Salt and this project installed
(the Salt daemons are taken from the same directory as that interpreter).
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from expressware_sim import Node, create_node, read_journal, service_provider_config, write_sia
from saltext.expressware.demo import sia_url
from saltext.expressware.demo_cluster import (
    Daemons,
    free_ports,
    master_config,
    minion_config,
    salt_bin,
    wait_for_minions,
    write_config,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import analysis  # noqa: E402  (a sibling file of this script)
import fleet  # noqa: E402
import fleet_scale  # noqa: E402
import go_floor  # noqa: E402
import report  # noqa: E402
import scale  # noqa: E402
import timeline_svg  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
APPLICATION = "ndbmtd"
FROM_VERSION, TO_VERSION = "5.25.2", "5.26.0"
SWEEP_VERSIONS = ["5.26.1", "5.26.2", "5.26.3", "5.26.4", "5.26.5", "5.26.6"]
KERNEL_A = "5.14.0-362.el9.x86_64"
KERNEL_B = "5.14.0-427.el9.x86_64"
TINY = {"build": 0.3, "install": 0.1, "link_training": 0.2, "reboot": 0.3}

PROFILES = {
    "full": {
        "nodes": 8,
        "delays": {"build": 5.0, "install": 2.0, "link_training": 2.0, "reboot": 2.0},
        "sweep": [1, 2, 4, 8],
        "scale_nodes": 2000,
        "scale_budget": 90.0,
        "fleet_clusters": 3,
        "fleet_size": 3,
        "fleet_scale_clusters": 500,
        "fleet_scale_size": 4,
        "fleet_adapters": 50,
    },
    "quick": {
        "nodes": 3,
        "delays": {"build": 1.0, "install": 0.5, "link_training": 0.5, "reboot": 0.5},
        "sweep": [1, 2, 3],
        "scale_nodes": 200,
        "scale_budget": 15.0,
        "fleet_clusters": 2,
        "fleet_size": 2,
        "fleet_scale_clusters": 50,
        "fleet_scale_size": 4,
        "fleet_adapters": 10,
    },
}


def say(text):
    print(f"[bench] {text}", flush=True)


class SetupError(RuntimeError):
    """A cluster did not come up (no job ran)."""


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(signum)


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

_CHILDREN = set()  # Popen objects of running commands, for the cleanup


def run_command(argv, log_path, echo_stderr=True, timeout=3600):
    """Run a Salt command in its own session; stdout kept, stderr echoed and logged. Returns a dict."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        t_start = time.time()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        _CHILDREN.add(proc)
        _SESSIONS.add(proc.pid)
        err_lines, out_chunks = [], []

        def pump_err():
            for line in proc.stderr:
                err_lines.append(line)
                with contextlib.suppress(ValueError):  # the log is closed when the command was interrupted
                    log.write(line)
                    log.flush()
                if echo_stderr and not line.startswith("unclosed "):
                    print("    " + line.rstrip(), flush=True)

        def pump_out():
            out_chunks.append(proc.stdout.read())

        readers = [threading.Thread(target=pump_err, daemon=True), threading.Thread(target=pump_out, daemon=True)]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
        t_end = time.time()
        for reader in readers:
            reader.join(timeout=10)
        _CHILDREN.discard(proc)
        out = "".join(out_chunks)
        log.write("----- stdout\n" + (out or ""))
    return {
        "argv": argv,
        "rc": proc.returncode,
        "stdout": out or "",
        "stderr": "".join(err_lines),
        "t_start": t_start,
        "t_end": t_end,
        "log": str(log_path),
    }


def _kill(proc):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def kill_children():
    for proc in list(_CHILDREN):
        if proc.poll() is None:
            say(f"stopping the unfinished command (pid {proc.pid})")
            _kill(proc)
        _CHILDREN.discard(proc)


_SESSIONS = set()  # session ids of everything started here (each daemon and command leads its own session)


class TrackedDaemons(Daemons):
    """The demo's daemon group, remembering every session it started for the final leftover check."""

    def start(self, name, argv):
        super().start(name, argv)
        _SESSIONS.add(self.procs[name].pid)


def leftovers():
    """Processes still in a session this script started (ours by construction), as (pid, cmdline)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except (OSError, IndexError):
            continue
        if int(fields[3]) in _SESSIONS:
            found.append((int(entry), cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


# ---------------------------------------------------------------------------
# A cluster: simulated nodes, one master, one minion per node
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def cluster(work, count, delays, kernels=None, versions=(), start_timeout=180, grains=None):
    """Create ``count`` nodes under ``work``, start the daemons, yield, and always stop them.

    ``kernels``: {node name: kernel release} for nodes not on ``KERNEL_A``; each minion's ``kernelrelease``
    grain is set to its node's kernel (the grain decides the build groups, the node's kernel what its RPMs
    must match). ``grains``: {node name: further grains} (a fleet's ``expressware:cluster``).
    """
    work = Path(work)
    kernels = kernels or {}
    roots, kernel_of = {}, {}
    for i in range(1, count + 1):
        name = f"node{i}"
        kernel_of[name] = kernels.get(name, KERNEL_A)
        node = create_node(work / "nodes" / name, name=name, version=FROM_VERSION, kernel=kernel_of[name], **delays)
        node.add_application(APPLICATION)
        roots[name] = str(node.root)
    installers = work / "srv" / "salt" / "expressware"
    for version in {FROM_VERSION, TO_VERSION, *versions}:
        write_sia(installers, version)
    (work / "srv" / "pillar").mkdir(parents=True, exist_ok=True)

    daemons = TrackedDaemons(work / "logs")
    try:
        publish_port, ret_port = free_ports(2)
        mconf = master_config(work, publish_port, ret_port)
        mconf.update({"file_recv": True, "peer_run": {".*": ["expressware_lease.*"]}})
        conf = write_config(work / "salt" / "master" / "conf", "master", mconf)
        daemons.start("master", [salt_bin("salt-master"), "-c", conf, "-l", "warning"])
        for name, root in roots.items():
            config = minion_config(work, name, Node(root).minion_config(), publish_port, ret_port)
            config.update(service_provider_config())
            config["grains"] = dict((grains or {}).get(name, {}), kernelrelease=kernel_of[name])
            minion_conf = write_config(work / "salt" / name / "conf", "minion", config)
            daemons.start(name, [salt_bin("salt-minion"), "-c", minion_conf, "-l", "warning", "--disable-keepalive"])
        say(f"{work.name}: salt-master on 127.0.0.1:{ret_port}, {count} minions starting")
        started = time.time()
        if not wait_for_minions(conf, list(roots), daemons, start_timeout):
            daemons.log_tails()
            raise SetupError(f"{work.name}: the minions did not all answer within {start_timeout} s")
        say(f"{work.name}: all {count} minions answer ({time.time() - started:.1f} s)")
        yield {"conf": conf, "roots": roots, "work": work, "kernels": kernel_of, "delays": delays}
    finally:
        kill_children()
        say(f"{work.name}: stopping the Salt daemons")
        daemons.stop_all()


def journals(roots):
    return {name: read_journal(root) for name, root in roots.items()}


def set_delays(roots, delays):
    for root in roots.values():
        Node(root).set_delays(**delays)


def parse_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def rolling_update(cl, version, logname, tgt="*", tgt_type="glob"):
    argv = [
        salt_bin("salt-run"),
        "-c",
        cl["conf"],
        "--out=json",
        "rolling.update",
        f"tgt={tgt}",
        f"version={version}",
        f"sia={sia_url(version)}",
        f"applications=[{APPLICATION}]",
    ]
    if tgt_type != "glob":
        argv.append(f"tgt_type={tgt_type}")
    say("$ salt-run " + " ".join(argv[3:]))
    ran = run_command(argv, cl["work"] / "logs" / f"{logname}.log")
    ran["summary"] = parse_json(ran["stdout"])
    status = (ran["summary"] or {}).get("status")
    say(f"salt-run exited {ran['rc']} after {ran['t_end'] - ran['t_start']:.1f} s, rollout status {status}")
    return ran


def rollout_record(cl, summary):
    """The runner's own record of a rollout (master cachedir), or None."""
    rollout_id = (summary or {}).get("rollout")
    if not rollout_id:
        return None
    directory = cl["work"] / "salt" / "master" / "cache" / "expressware" / "rollouts"
    with contextlib.suppress(OSError, ValueError):
        return scale.store_lib.RolloutStore(str(directory)).load(rollout_id)  # as the runner reads it
    return None


def node_outcome(cl, version):
    """How many nodes ended on ``version``, active, with the application running."""
    ok = []
    for name, root in cl["roots"].items():
        node = Node(root)
        state = node.state()
        if (
            state["running_version"] == version
            and state["installed_version"] == version
            and state["active"]
            and node.application_running(APPLICATION)
        ):
            ok.append(name)
    return {"ok": len(ok), "of": len(cl["roots"]), "not_ok": sorted(set(cl["roots"]) - set(ok))}


# ---------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------


def measure_floors(cl, version):
    """What parts of the overhead cost on their own, on the same daemons (median of 3 runs each):
    ``salt-run`` start-up and exit (``test.arg``), and the pre-flight call on one minion and on all of
    them (``salt ... expressware.preflight``, minus a ``test.ping`` on as many for the CLI's own cost);
    and a go-ahead's floor, one ``event.fire`` job from its publish to its event on the minion's bus
    (median of 9, ``go_floor.measure``)."""

    def wall(argv, name):
        times = []
        for attempt in range(3):
            ran = run_command(argv, cl["work"] / "logs" / f"floor-{name}-{attempt}.log", echo_stderr=False)
            times.append(ran["t_end"] - ran["t_start"])
        return statistics.median(times)

    salt_run = [salt_bin("salt-run"), "-c", cl["conf"], "--out=json"]
    salt = [salt_bin("salt"), "-c", cl["conf"], "--out=json"]
    preflight = ["expressware.preflight", version, f"sia={sia_url(version)}"]
    one = sorted(cl["roots"])[0]
    floors = {"salt_run_startup_s": wall(salt_run + ["test.arg", "1"], "salt-run"), "nodes": len(cl["roots"])}
    for label, tgt in (("one", one), ("all", "*")):
        floors[f"preflight_{label}_s"] = max(
            0.0, wall(salt + [tgt] + preflight, f"preflight-{label}") - wall(salt + [tgt, "test.ping"], f"ping-{label}")
        )
    # A go-ahead's floor: one publish of event.fire until the event is on the minion's bus (bench/go_floor.py).
    try:
        floors["go_ahead"] = go_floor.measure(cl["conf"], str(cl["work"] / "salt" / one / "conf" / "minion"), one)
    except Exception as exc:  # pylint: disable=broad-except  # a measurement apart must not lose the run's figures
        say(f"floors: the go-ahead's floor was not measured: {exc}")
    say(
        f"floors: salt-run start-up {floors['salt_run_startup_s']:.2f} s, pre-flight beyond a ping: "
        f"one node {floors['preflight_one_s']:.2f} s, all {floors['nodes']} {floors['preflight_all_s']:.2f} s"
        + (
            f", event.fire publish to the event on the minion's bus {floors['go_ahead']['median']:.3f} s (median)"
            if (floors.get("go_ahead") or {}).get("median") is not None
            else ""
        )
    )
    return floors


def phase_rolling(work, prof, results):
    count, delays = prof["nodes"], prof["delays"]
    sweep = [n for n in prof["sweep"] if n <= count]
    with cluster(work / "rolling", count, delays, versions=SWEEP_VERSIONS[: len(sweep)]) as cl:
        say(f"rolling: {count} nodes, delays {delays}")
        ran = rolling_update(cl, TO_VERSION, "rolling-update")
        figures = analysis.analyse_run(journals(cl["roots"]), ran["t_start"], ran["t_end"])
        figures.update(
            rc=ran["rc"],
            status=(ran["summary"] or {}).get("status"),
            outcome=node_outcome(cl, TO_VERSION),
            command="salt-run " + " ".join(ran["argv"][3:]),
            groups=len((ran["summary"] or {}).get("builds") or {}),
            log=ran["log"],
        )
        record = rollout_record(cl, ran["summary"])
        figures["handover_parts"] = analysis.handover_parts(figures, record)
        figures["startup_parts"] = analysis.startup_parts(figures, record)
        results["rolling"] = figures
        say(
            f"rolling: wall {figures['wall_s']:.1f} s, physical limit {figures['physical_limit_s']:.1f} s, "
            f"ratio {figures['ratio'] or float('nan'):.3f}, builds {figures['builds']}, "
            f"max down {figures['max_nodes_down']}"
        )

        figures["floors"] = measure_floors(cl, TO_VERSION)

        # Builds against the number of nodes: more rollouts on the same daemons, tiny delays.
        set_delays(cl["roots"], TINY)
        ids = sorted(cl["roots"], key=lambda n: int(n[4:]))
        rows = [
            {
                "nodes": count,
                "groups": figures["groups"],
                "builds": figures["builds"],
                "version": TO_VERSION,
                "wall_s": figures["wall_s"],
                "status": figures["status"],
                "max_nodes_down": figures["max_nodes_down"],
                "delays": "realistic (the run above)",
            }
        ]
        for size, version in zip(sweep, SWEEP_VERSIONS):
            targets = ids[:size]
            ran = rolling_update(cl, version, f"sweep-{size}", tgt=",".join(targets), tgt_type="list")
            fig = analysis.analyse_run(journals(cl["roots"]), ran["t_start"], ran["t_end"])
            status = (ran["summary"] or {}).get("status")
            rows.append(
                {
                    "nodes": size,
                    "groups": len((ran["summary"] or {}).get("builds") or {}),
                    "builds": fig["builds"],
                    "version": version,
                    "wall_s": fig["wall_s"],
                    "status": status,
                    "max_nodes_down": fig["max_nodes_down"],
                    "delays": "tiny",
                    "reason": (ran["summary"] or {}).get("reason"),
                }
            )
            if status != "done":
                say(f"sweep: the rollout to {version} ended {status}; the sweep stops here (the lease stays taken)")
                break
        results["builds_sweep"] = rows


def phase_naive(work, prof, results):
    count, delays = prof["nodes"], prof["delays"]
    other = max(1, count // 4)
    kernels = {f"node{i}": KERNEL_B for i in range(count - other + 1, count + 1)}
    with cluster(work / "naive", count, delays, kernels=kernels, versions=[SWEEP_VERSIONS[0]]) as cl:
        argv = [
            salt_bin("salt"),
            "-c",
            cl["conf"],
            "-b",
            "1",
            "-t",
            "120",
            "--out=json",
            "*",
            "state.single",
            "expressware.installed",
            f"name={TO_VERSION}",
            f"sia={sia_url(TO_VERSION)}",
            f"applications=[{APPLICATION}]",
            "lease=False",
        ]
        say("naive: $ salt " + " ".join(argv[3:]))
        ran = run_command(argv, cl["work"] / "logs" / "naive.log")
        say(f"naive: salt exited {ran['rc']} after {ran['t_end'] - ran['t_start']:.1f} s")
        figures = analysis.analyse_run(journals(cl["roots"]), ran["t_start"], ran["t_end"])
        figures.update(
            rc=ran["rc"], outcome=node_outcome(cl, TO_VERSION), command="salt " + " ".join(argv[3:]), log=ran["log"]
        )
        results["naive"] = figures
        say(f"naive: wall {figures['wall_s']:.1f} s, builds {figures['builds']}, max down {figures['max_nodes_down']}")

        # The same nodes, two kernels: one rolling update, one build per group.
        set_delays(cl["roots"], TINY)
        ran = rolling_update(cl, SWEEP_VERSIONS[0], "two-groups")
        fig = analysis.analyse_run(journals(cl["roots"]), ran["t_start"], ran["t_end"])
        builders = sorted({n["node"] for n in fig["nodes"] for b in n["builds"] if b[0] == "build-rpm"})
        results["two_groups"] = {
            "nodes": count,
            "kernels": {KERNEL_A: count - other, KERNEL_B: other},
            "groups": len((ran["summary"] or {}).get("builds") or {}),
            "builds": fig["builds"],
            "builders": builders,
            "status": (ran["summary"] or {}).get("status"),
            "wall_s": fig["wall_s"],
            "max_nodes_down": fig["max_nodes_down"],
            "version": SWEEP_VERSIONS[0],
        }


def phase_scale(work, prof, results):
    results["scale"] = scale.run(prof["scale_nodes"], work / "scale", groups=2, budget=prof["scale_budget"], log=say)
    s = results["scale"]
    say(
        f"scale: {s['nodes']} nodes: no save {s['no_save']['seconds']:.2f} s, record "
        f"{s['no_save']['record_bytes'] / 1e6:.2f} MB; save per step ~{s['save_per_step']['estimated_total_s']:.1f} s"
    )


def one_cluster_pillar(cl, name):
    """Put every minion in the cluster ``name`` by pillar (the master's word comes before the minions' grain):
    the fleet's nodes become one cluster, walked in one line. Returns how many minions the pillar matches."""
    pillar = cl["work"] / "srv" / "pillar"
    (pillar / "top.sls").write_text("base:\n  '*':\n    - one_cluster\n", encoding="utf-8")
    (pillar / "one_cluster.sls").write_text(f"expressware:\n  cluster: {name}\n", encoding="utf-8")
    salt = [salt_bin("salt"), "-c", cl["conf"], "--out=json", "--static", "-t", "60"]
    run_command(salt + ["*", "saltutil.refresh_pillar", "wait=True"], cl["work"] / "logs" / "refresh-pillar.log")
    ran = run_command(
        salt + ["-C", f"I@expressware:cluster:{name}", "test.ping"], cl["work"] / "logs" / "pillar-check.log"
    )
    return sum(1 for ok in (parse_json(ran["stdout"]) or {}).values() if ok is True)


def phase_fleet(work, prof, results):
    out = results["fleet"] = {}
    out["scale"] = fleet_scale.run(
        work / "fleet-scale", prof["fleet_scale_clusters"], prof["fleet_scale_size"], log=say
    )
    s = out["scale"]
    say(
        f"fleet scale: {s['nodes']} nodes in {s['clusters']} clusters: logic {s['no_save']['seconds']:.2f} s, "
        f"with saves {s['with_saves']['seconds']:.1f} s, {s['with_saves']['bytes_on_disk'] / 1e6:.2f} MB on disk"
    )

    size, delays = prof["fleet_size"], prof["delays"]
    clusters = {f"c{i + 1}": [f"node{i * size + j + 1}" for j in range(size)] for i in range(prof["fleet_clusters"])}
    grains = {n: {"expressware": {"cluster": c}} for c, nodes in clusters.items() for n in nodes}
    count = sum(map(len, clusters.values()))
    out["layout"] = {"clusters": clusters, "delays": delays}
    with cluster(work / "fleet", count, delays, grains=grains) as cl:
        say(f"fleet: {len(clusters)} clusters of {size} (grain expressware:cluster), delays {delays}")
        ran = rolling_update(cl, TO_VERSION, "fleet-update")
        summary = ran["summary"] or {}
        records = {
            c: rollout_record(cl, {"rollout": line.get("rollout")})
            for c, line in (summary.get("clusters") or {}).items()
        }
        figures = fleet.cluster_figures(journals(cl["roots"]), clusters, ran["t_start"], ran["t_end"], records)
        figures.update(
            rc=ran["rc"],
            status=summary.get("status"),
            fleet=summary.get("fleet"),
            statuses={c: line.get("status") for c, line in (summary.get("clusters") or {}).items()},
            outcome=node_outcome(cl, TO_VERSION),
            command="salt-run " + " ".join(ran["argv"][3:]),
            log=ran["log"],
        )
        cache = cl["work"] / "salt" / "master" / "cache" / "expressware"
        figures["records_bytes"] = {
            "rollouts": sorted(f.stat().st_size for f in (cache / "rollouts").glob("*.json")),
            "fleet": sum(f.stat().st_size for f in (cache / "fleets").glob("*.json")),
        }
        out["fleet_run"] = figures
        say(
            f"fleet: wall {figures['wall_s']:.1f} s, slowest cluster's limit {figures['slowest_limit_s']:.1f} s "
            f"({figures['slowest_cluster']}), ratio {figures['ratio'] or float('nan'):.3f}, "
            f"builds {figures['builds']}, max down {figures['max_nodes_down']}"
        )

        # The same nodes, back on the old version, walked as one cluster: today's one line.
        matched = one_cluster_pillar(cl, "line")
        fleet.reset_nodes(cl["roots"], create_node, FROM_VERSION, cl["kernels"], delays, APPLICATION)
        ran = rolling_update(cl, TO_VERSION, "one-line")
        line = analysis.analyse_run(journals(cl["roots"]), ran["t_start"], ran["t_end"])
        summary = ran["summary"] or {}
        out["one_line"] = {
            "pillar_matched": matched,
            "rc": ran["rc"],
            "status": summary.get("status"),
            "cluster": summary.get("cluster"),
            "a_fleet": "fleet" in summary,
            "outcome": node_outcome(cl, TO_VERSION),
            "command": "salt-run " + " ".join(ran["argv"][3:]),
            "wall_s": line["wall_s"],
            "physical_limit_s": line["physical_limit_s"],
            "ratio": line["ratio"],
            "builds": line["builds"],
            "max_nodes_down": line["max_nodes_down"],
            "handover": line["handover"],
            "log": ran["log"],
        }
        record = rollout_record(cl, summary)
        parts = analysis.handover_parts(line, record)
        out["one_line"]["handover_parts"] = (
            dict(parts["mean"], gate=(parts["gate"] or {}).get("mean")) if parts else None
        )
        out["one_line"]["startup_parts"] = analysis.startup_parts(line, record)
        say(
            f"one line: wall {line['wall_s']:.1f} s, limit {line['physical_limit_s']:.1f} s, "
            f"fleet/one line {figures['wall_s'] / line['wall_s']:.2f}"
        )

        out["adapters"] = fleet.adapter_cost(cl["conf"], sorted(cl["roots"]), prof["fleet_adapters"], log=say)
        a = out["adapters"]["process"]
        say(
            f"fleet: per cluster in flight: {a['threads (OS)']['per_cluster']:.2f} thread(s), "
            f"{a['open descriptors']['per_cluster']:.1f} descriptor(s) ({a['sockets']['per_cluster']:.1f} sockets), "
            f"{a['RSS (kB)']['per_cluster'] / 1024:.2f} MiB"
        )


# ---------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------


def machine():
    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "ram_gb": None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "salt": None,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    with contextlib.suppress(Exception):
        import salt.version  # pylint: disable=import-outside-toplevel

        info["salt"] = salt.version.__version__
    info["cpu_affinity"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return info


def compile_bytecode():
    """Compile the extension's and the simulator's Python files, as an installed package has them.

    pip compiles a package when it installs it. From a checkout installed in editable mode, with
    PYTHONDONTWRITEBYTECODE set (as on this machine), every Salt job and every simulated tool would
    compile the extension's modules again, and the figures would measure the compiler."""
    import compileall  # pylint: disable=import-outside-toplevel

    import expressware_sim  # pylint: disable=import-outside-toplevel
    from saltext.expressware.loader import get_dirs  # pylint: disable=import-outside-toplevel

    dirs = {Path(d) for paths in get_dirs().values() for d in paths} | {Path(p) for p in expressware_sim.__path__}
    dirs |= {d.parent / "utils" for d in dirs} | {d.parent / "_utils" for d in dirs}
    done = sorted(str(d) for d in dirs if d.is_dir() and compileall.compile_dir(str(d), quiet=1, maxlevels=2))
    return {"compiled": done, "PYTHONDONTWRITEBYTECODE": bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))}


def wait_idle(limit, max_wait):
    """Wait (up to ``max_wait`` s) until the 1-minute load average is below ``limit``; return the loads seen."""
    start = time.time()
    load = os.getloadavg()
    while load[0] >= limit and time.time() - start < max_wait:
        say(f"load average {load[0]:.2f} >= {limit}; waiting ({max_wait - (time.time() - start):.0f} s left)")
        time.sleep(15)
        load = os.getloadavg()
    return {
        "load_at_start": [round(v, 2) for v in load],
        "waited_s": round(time.time() - start, 1),
        "idle": load[0] < limit,
        "limit": limit,
    }


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small run: 3 minions, short delays, 200-node scale run; writes "
        "bench/results/BENCHMARKS-quick.md unless --output is given",
    )
    parser.add_argument("--nodes", type=int, help="minions per cluster (default: 8, --quick: 3)")
    parser.add_argument("--scale-nodes", type=int, help="nodes of the daemon-less scale run (default 2000)")
    parser.add_argument("--output", type=Path, help="the Markdown report (default: BENCHMARKS.md)")
    parser.add_argument("--svg", type=Path, help="the timeline SVG (default: bench/timeline.svg)")
    parser.add_argument(
        "--only",
        action="append",
        choices=["rolling", "naive", "scale", "fleet"],
        help="run only these phases (repeatable; default: all); --only fleet alone replaces the Fleets section of "
        "the report and keeps the rest",
    )
    parser.add_argument("--workdir", type=Path, help="keep everything (logs, journals, configs) here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    parser.add_argument(
        "--no-wait-idle", action="store_true", help="do not wait for a 1-minute load average below 1.5 before starting"
    )
    parser.add_argument("--max-wait", type=float, default=300, help="longest wait for an idle machine (s)")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="RAW",
        help="run nothing: write the report and the timeline again from the raw results of an "
        "earlier run (bench/results/bench-*.json)",
    )
    args = parser.parse_args(argv)
    if args.nodes is not None and args.nodes < 2:
        parser.error("--nodes must be at least 2")
    return args


def write_report(results, output, svg, raw):
    """The whole report; a run of the fleet phase alone replaces only the Fleets section of an existing report
    (the other sections stay as their own run wrote them)."""
    if results["phases"] == ["fleet"] and output.exists():
        text = report.splice_fleet(output.read_text(encoding="utf-8"), report.fleet_section(results, output, raw))
    else:
        text = report.markdown(results, output, svg, raw)
    output.write_text(text, encoding="utf-8")


def rerender(args):
    """The report and the SVG from an earlier run's raw JSON (no measurement)."""
    results = json.loads(args.from_json.read_text(encoding="utf-8"))
    quick = results["profile"] == "quick"
    output = args.output or (RESULTS / "BENCHMARKS-quick.md" if quick else REPO / "BENCHMARKS.md")
    svg_path = args.svg or (RESULTS / "timeline-quick.svg" if quick else REPO / "bench" / "timeline.svg")
    panels = report.panels(results)
    if panels:
        svg_path.write_text(timeline_svg.render(panels, title=report.svg_title(results)), encoding="utf-8")
        say(f"timeline: {svg_path}")
    write_report(results, output, svg_path if panels else None, args.from_json.resolve())
    say(f"report: {output}")
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        return rerender(args)
    prof = dict(PROFILES["quick" if args.quick else "full"])
    if args.nodes:
        prof["nodes"] = args.nodes
        prof["sweep"] = sorted({n for n in [1, 2, 4, 8, 16, 32] if n < args.nodes} | {args.nodes})
    if args.scale_nodes:
        prof["scale_nodes"] = args.scale_nodes
    name = "quick" if args.quick else "full"
    output = args.output or (RESULTS / "BENCHMARKS-quick.md" if args.quick else REPO / "BENCHMARKS.md")
    svg_path = args.svg or (RESULTS / "timeline-quick.svg" if args.quick else REPO / "bench" / "timeline.svg")
    phases = args.only or ["rolling", "naive", "scale", "fleet"]
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    stamp = time.strftime("%Y%m%dT%H%M%S")
    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="expressware-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {
        "profile": name,
        "settings": {k: v for k, v in prof.items()},
        "machine": machine(),
        "phases": phases,
        "errors": {},
        "work": str(work),
    }
    say(f"{name} run; work directory {work}")
    results["bytecode"] = compile_bytecode()
    say(f"bytecode compiled in {len(results['bytecode']['compiled'])} directories")
    if args.no_wait_idle or args.quick:
        results["load"] = {"load_at_start": [round(v, 2) for v in os.getloadavg()], "waited_s": 0, "idle": None}
    else:
        results["load"] = wait_idle(1.5, args.max_wait)
    say(f"load average at start: {results['load']['load_at_start']}")
    status = 0
    try:
        for phase in phases:
            say(f"===== phase {phase}")
            t = time.time()
            try:
                phase_fn = {"rolling": phase_rolling, "naive": phase_naive, "scale": phase_scale, "fleet": phase_fleet}
                phase_fn[phase](work, prof, results)
            except (SetupError, subprocess.SubprocessError, OSError, ValueError, RuntimeError) as exc:
                say(f"phase {phase} failed: {exc!r}")
                results["errors"][phase] = repr(exc)
                status = 1
            results.setdefault("phase_seconds", {})[phase] = round(time.time() - t, 1)
    except KeyboardInterrupt as exc:
        say("interrupted")
        results["errors"]["interrupted"] = True
        status = 128 + (exc.args[0] if exc.args else signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        kill_children()
        left = leftovers()
        for pid, cmdline in left:
            say(f"left over, killing pid {pid}: {cmdline[:120]}")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        results["leftover_processes"] = len(left)
        results["load"]["load_at_end"] = [round(v, 2) for v in os.getloadavg()]
        results["kept"] = bool(args.workdir or args.keep)
        RESULTS.mkdir(parents=True, exist_ok=True)
        raw = RESULTS / f"bench-{stamp}-{name}.json"
        raw.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
        say(f"raw results: {raw}")
        if "interrupted" not in results["errors"]:
            panels = report.panels(results)
            if panels:
                svg_path.parent.mkdir(parents=True, exist_ok=True)
                svg_path.write_text(timeline_svg.render(panels, title=report.svg_title(results)), encoding="utf-8")
                say(f"timeline: {svg_path}")
            output.parent.mkdir(parents=True, exist_ok=True)
            write_report(results, output, svg_path if panels else None, raw)
            say(f"report: {output}")
        if args.workdir or args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return status


if __name__ == "__main__":
    sys.exit(main())
