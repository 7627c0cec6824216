"""``expressware-demo``: a rolling eXpressWare update on a throwaway simulated cluster.

Everything runs as the current user on loopback: simulated eXpressWare nodes
(``expressware_sim``), one real ``salt-master`` and one real ``salt-minion`` per
node, each minion pointed at its own node root through its config.  The demo
waits for the minions, runs the main job with its output on the terminal,
reports versions and the down/active timeline from the simulator's journals,
writes the picture of the rollout (an HTML page from its record) where it lasts,
and always stops every daemon it started (also on errors and Ctrl-C).
"""

import argparse
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from expressware_sim import (
    FAULTS,
    Node,
    create_node,
    down_intervals,
    max_nodes_down,
    write_sia,
)
from saltext.expressware.demo_cluster import (
    Daemons,
    free_ports,
    master_config,
    minion_config,
    salt_bin,
    salt_json,
    say,
    wait_for_minions,
    write_config,
)

#: The application each simulated node runs on the stack.
APPLICATION = "ndbmtd"

EXIT_SETUP = 3  # the cluster did not come up: no job ran

#: Seconds of Salt around a node's simulated delays (publish, state run, the runner's checks), ample on a loaded
#: machine: a healthy node of the demo takes about 4 s in all, of which 2.5 s are its delays.
SALT_SECONDS = 10


def fitted_node_timeout(args):
    """The ``node_timeout`` of the demo's rollout, fitted to its simulated delays: twice the slowest healthy step
    that ``node_timeout`` bounds, plus :data:`SALT_SECONDS`. The slowest is a node whose stack starts only after a
    reboot (two installer runs, the reboot, link training), or a build (``sia.build_rpm`` is bounded by it too).
    With the default delays: 2 x max(3, 2 x 1 + 2 + 1.5) + 10 = 21 s; the runner's default of 1800 s made a fault
    such as ``node2:never-active`` wait half an hour before the rollout halted."""
    slowest = max(args.build, 2 * args.install + args.reboot + args.link_training)
    return int(math.ceil(2 * slowest + SALT_SECONDS))


def sia_url(version):
    return f"salt://expressware/Dolphin_eXpressWare-{version}.sh"


def run_rolling(conf, args, ids):
    """The main job: the ``rolling.update`` runner, its progress (stderr) and summary straight to the terminal.

    The one place that knows the runner's arguments.
    """
    # salt-run exits 0 for a function it does not know, so ask first rather than report a success.
    docs = subprocess.run(
        [salt_bin("salt-run"), "-c", conf, "--out=json", "doc.runner"],
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ).stdout
    if '"rolling.update"' not in docs:
        say("the runner rolling.update is not available in this installation; try --job modules")
        return 1
    argv = [
        salt_bin("salt-run"),
        "-c",
        conf,
        "rolling.update",
        "tgt=*",
        f"version={args.to_version}",
        f"sia={sia_url(args.to_version)}",
        f"applications=[{APPLICATION}]",
        f"node_timeout={args.node_timeout}",
    ]
    say("$ salt-run " + " ".join(argv[1:]))
    return subprocess.run(argv, check=False).returncode


def show(fun, result):
    """Print a module's return readably: the installer's own output as text, a node state as one line."""
    if isinstance(result, dict) and fun == "sia.install_node":
        print("    " + result.get("output", "").replace("\n", "\n    "))
        if result.get("warnings"):
            print("    warnings: " + result["warnings"])
        print(
            f"    => {result.get('installed_before')} -> {result.get('installed')}"
            f"{' (rebooting)' if result.get('rebooting') else ''}",
            flush=True,
        )
    elif isinstance(result, dict) and "state" in result:
        reasons = "; ".join(map(str, result.get("reasons") or []))
        print(
            f"    => {result['state']}, running {result.get('running')}{', ' + reasons if reasons else ''}", flush=True
        )
    else:  # Salt's error message for a failed call, or a shape this demo does not know
        text = result if isinstance(result, str) else json.dumps(result, indent=2)
        print("    " + text.replace("\n", "\n    "), flush=True)


def run_modules(conf, args, ids):
    """The walk by hand with the execution modules: install, wait until active, next node; stop at a failure."""
    steps = [
        ("service.stop", [APPLICATION], 30),
        ("sia.install_node", [sia_url(args.to_version)], 120),
        ("expressware.wait_active", ["timeout=60"], 90),
        ("service.start", [APPLICATION], 30),
    ]
    for minion_id in ids:
        for fun, fun_args, timeout in steps:
            say(f"$ salt {minion_id} {fun} {' '.join(fun_args)}")
            status, out = salt_json(conf, minion_id, fun, *fun_args, timeout=timeout)
            result = (out or {}).get(minion_id)
            show(fun, result)
            failed = (
                status != 0
                or result is False
                or (not isinstance(result, (dict, bool)))
                or (isinstance(result, dict) and result.get("active") is False)
            )
            if failed:
                say(f"{fun} failed on {minion_id}; not touching the other nodes")
                return status or 1
    return 0


JOBS = {"rolling": run_rolling, "modules": run_modules}


def report(conf, roots, job_start):
    """Versions through Salt, and from the journals: most nodes down at once and the down/active timeline."""
    _, versions = salt_json(conf, "*", "expressware.version", timeout=15)
    versions = versions or {}
    say("result (installed: expressware.version through Salt; running and state: the simulator):")
    for name, root in roots.items():
        state = Node(root).state()
        print(
            f"  {name:<8} installed {versions.get(name, '?')!s:<10} running {state['running_version']!s:<10} "
            f"{'active' if state['active'] else 'INACTIVE'}",
            flush=True,
        )
    print(f"  max nodes down at once: {max_nodes_down(roots.values())}")
    for name, intervals in sorted(down_intervals(roots.values()).items()):
        spans = [
            f"down +{start - job_start:.1f}s, " + ("still down" if end is None else f"active +{end - job_start:.1f}s")
            for start, end in intervals
        ]
        print(f"  {name:<8} {'; '.join(spans) or 'never down'}", flush=True)


def write_rollout_report(work, args, conf):
    """The picture of the rollout the job made, written as an operator would write it (``salt-run rolling.report``,
    an HTML page from the record in the master's cache) where it outlasts the demo; its path, or None when no
    rollout was recorded."""

    def salt_run(*argv):
        proc = subprocess.run(
            [salt_bin("salt-run"), "-c", conf, "--out=json", *argv], check=False, capture_output=True, text=True
        )
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            return proc.returncode, (proc.stdout + proc.stderr).strip()

    status, rows = salt_run("rolling.list", "limit=1")
    if status != 0 or not isinstance(rows, list):
        say(f"could not list the rollouts: {rows}")
        return None
    if not rows:
        say("no rollout was recorded (it was refused before it started); no report")
        return None
    rollout = rows[0]["rollout"]
    if args.report:
        path = Path(args.report)
    elif args.workdir or args.keep:
        path = work / "report.html"
    else:
        path = Path(tempfile.gettempdir()) / f"expressware-demo-{rollout}.html"
    argv = ["rolling.report", f"rollout={rollout}", f"path={path.resolve()}"]
    say("$ salt-run " + " ".join(argv))
    status, result = salt_run(*argv)
    if status != 0 or not isinstance(result, dict) or "path" not in result:
        say(f"could not write the rollout's report to {path}: {result}")
        return None
    say(f"the picture of rollout {rollout} ({result['status']}): {result['path']} (open it in a browser)")
    return Path(result["path"])


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="expressware-demo",
        description="Rolling update of Dolphin eXpressWare on a throwaway simulated cluster: a real salt-master "
        "and real salt-minions on 127.0.0.1, one simulated node per minion. No root, no hardware.",
        epilog="Exit status: the job's (0 = success); %d if the cluster did not come up." % EXIT_SETUP,
    )
    parser.add_argument("--nodes", type=int, default=4, help="number of simulated nodes/minions (default: 4)")
    parser.add_argument("--from-version", default="5.25.2", help="version the nodes start on (default: 5.25.2)")
    parser.add_argument("--to-version", default="5.26.0", help="version to update to (default: 5.26.0)")
    parser.add_argument(
        "--job",
        choices=sorted(JOBS),
        default="rolling",
        help="rolling: the rolling.update runner (default); "
        "modules: sia.install_node + expressware.wait_active, node by node",
    )
    parser.add_argument("--workdir", type=Path, help="put everything here and keep it (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, journals)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NODE:FAULT",
        help="switch on a simulator fault before the job, e.g. node2:start-fails-until-reboot "
        "(also stop-blocked, never-active, build-fails); repeatable",
    )
    parser.add_argument(
        "--start-timeout", type=float, default=90, help="seconds to wait for all minions to answer (default: 90)"
    )
    parser.add_argument(
        "--node-timeout",
        type=int,
        metavar="SECONDS",
        help="the rollout's node_timeout: a node not active this long after its first step fails "
        "and halts the rollout (default: fitted to the simulated delays, 2 x the slowest "
        "healthy step + %d s of Salt: 2 x max(build, 2 x install + reboot + link-training) "
        "+ %d, 21 s with the default delays, so that a fault such as node2:never-active "
        "halts the rollout about half a minute after that node's first step)" % (SALT_SECONDS, SALT_SECONDS),
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="where to write the picture of the rollout, an HTML page (default: report.html in "
        "the work directory when it is kept, else expressware-demo-<rollout>.html in the "
        "system's temporary directory)",
    )
    delays = parser.add_argument_group("simulated delays in seconds")
    for name, default in (("build", 3.0), ("install", 1.0), ("link-training", 1.5), ("reboot", 2.0)):
        delays.add_argument(f"--{name}", type=float, default=default, help=f"(default: {default})")
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    if args.node_timeout is None:
        args.node_timeout = fitted_node_timeout(args)
    elif not 1 <= args.node_timeout <= 7 * 86400:
        parser.error("--node-timeout must be between 1 and 604800 seconds")
    if args.workdir and (args.workdir / "nodes").exists():
        parser.error(f"--workdir {args.workdir} already holds a demo cluster; give a new or empty directory")
    for fault in args.fault:
        node, _, name = fault.partition(":")
        if not name or not node.startswith("node") or not node[4:].isdigit() or int(node[4:]) > args.nodes:
            parser.error(f"--fault {fault!r}: want nodeN:FAULT with N from 1 to {args.nodes}")
        if name not in FAULTS:
            parser.error(f"--fault {fault!r}: unknown fault (known: {', '.join(FAULTS)})")
    return args


def _on_signal(signum, _frame):
    # SIGTERM/SIGHUP take the same path as Ctrl-C, through every finally block.
    raise KeyboardInterrupt(signum)


def setup_cluster(work, args):
    """Create the nodes and installers; return ``{id: node root}``."""
    roots = {}
    for i in range(1, args.nodes + 1):
        name = f"node{i}"
        node = create_node(
            work / "nodes" / name,
            name=name,
            version=args.from_version,
            build=args.build,
            install=args.install,
            link_training=args.link_training,
            reboot=args.reboot,
        )
        # Each node runs a MySQL Cluster data node over SuperSockets: it holds the
        # stack, so the update must stop it first and start it again after.
        node.add_application(APPLICATION)
        roots[name] = str(node.root)
    installers = work / "srv" / "salt" / "expressware"
    for version in {args.from_version, args.to_version}:  # the old one too, for a rollback by hand
        write_sia(installers, version)
    (work / "srv" / "pillar").mkdir(parents=True, exist_ok=True)
    return roots


def main(argv=None):
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="expressware-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    daemons = Daemons(work / "logs")
    status = 1
    try:
        say(f"work directory {work}")
        roots = setup_cluster(work, args)
        publish_port, ret_port = free_ports(2)
        conf = write_config(work / "salt" / "master" / "conf", "master", master_config(work, publish_port, ret_port))
        daemons.start("master", [salt_bin("salt-master"), "-c", conf, "-l", "warning"])
        for name, root in roots.items():
            mconf = write_config(
                work / "salt" / name / "conf",
                "minion",
                minion_config(work, name, Node(root).minion_config(), publish_port, ret_port),
            )
            # No keepalive supervisor: one process per minion, and a crash shows instead of a silent restart.
            daemons.start(name, [salt_bin("salt-minion"), "-c", mconf, "-l", "warning", "--disable-keepalive"])
        say(f"salt-master on 127.0.0.1:{ret_port} (publish {publish_port}), {len(roots)} minions")
        if not wait_for_minions(conf, list(roots), daemons, args.start_timeout):
            say("the cluster did not come up; log tails on stderr")
            daemons.log_tails()
            status = EXIT_SETUP
            return status
        for fault in args.fault:
            name, _, fault_name = fault.partition(":")
            Node(roots[name]).set_fault(fault_name, True)
            say(f"fault {fault_name} switched on for {name}")
        say(f"all {len(roots)} minions answer; job {args.job!r}: {args.from_version} -> {args.to_version}")
        job_start = time.time()
        status = JOBS[args.job](conf, args, list(roots))
        say(f"job finished in {time.time() - job_start:.1f} s with exit status {status}")
        report(conf, roots, job_start)
        if args.job == "rolling":
            write_rollout_report(work, args, conf)
    except KeyboardInterrupt as exc:
        say("interrupted")
        status = 128 + (exc.args[0] if exc.args else signal.SIGINT)  # the shell's convention: 130, 143
    finally:
        # A second Ctrl-C must not cut the cleanup short and leave daemons behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        say("stopping the Salt daemons")
        daemons.stop_all()
        if args.workdir or args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
