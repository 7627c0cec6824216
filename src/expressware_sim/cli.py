"""Command line of the simulator: ``expressware-sim`` / ``python -m expressware_sim``.

    node create ROOT [--name N] [--version V] [--product PX|IX|MX] [--arch A] [--kernel K]
                     [--role node|frontend] [--stopped] [--build S] [--install S]
                     [--link-training S] [--reboot S] [--output-style simple|dated]
    node show ROOT
    style ROOT [simple|dated]           (show or set how the tools word their output)
    fault ROOT FAULT [--clear]          (FAULT "all" with --clear clears every fault)
    delay ROOT [--build S] [--install S] [--link-training S] [--reboot S]
    reboot ROOT
    sia DIR VERSION [--corrupt]
    journal ROOT... [--check-one-down]
    cluster DIR [--nodes N] [--version V] [--product P] [--output-style S] [delay options]
    netmgr configure|show|step|degrade|run FRONTEND_ROOT ...   (the frontend's Network Manager: netmgr.py)

Exit status: 0 success, 1 bad input or a failed check, 2 command-line usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import netmgr
from .journal import max_nodes_down, merged_journal
from .node import Node, create_node
from .output import DEFAULT_OUTPUT_STYLE, OUTPUT_STYLES
from .sia import write_sia
from .stack import DEFAULT_DELAYS, FAULTS, PRODUCTS
from .versions import SimError


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be a finite number >= 0: {text!r}")
    return value


def _add_delay_options(parser, defaults: bool) -> None:
    for name in ("build", "install", "link-training", "reboot"):
        key = name.replace("-", "_")
        parser.add_argument(
            f"--{name}",
            dest=key,
            type=_seconds,
            metavar="S",
            default=DEFAULT_DELAYS[key] if defaults else None,
            help=f"{name} delay in seconds" + (f" (default {DEFAULT_DELAYS[key]})" if defaults else ""),
        )


def _add_output_style_option(parser) -> None:
    parser.add_argument(
        "--output-style",
        choices=OUTPUT_STYLES,
        default=DEFAULT_OUTPUT_STYLE,
        help="simple: the forms of the project's interface; dated: the vendor's own forms "
        "(build dates, (GX), codename) (default %(default)s)",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="expressware-sim", description="Simulated Dolphin eXpressWare nodes.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    node = sub.add_parser("node", help="create or show a simulated node")
    nsub = node.add_subparsers(dest="node_cmd", required=True, metavar="SUBCOMMAND")
    create = nsub.add_parser("create", help="create a node root")
    create.add_argument("root")
    create.add_argument("--name")
    create.add_argument("--version", default="5.25.2")
    create.add_argument("--product", default="PX", help="PX, IX or MX")
    create.add_argument("--arch", default="x86_64")
    create.add_argument("--kernel", default="5.14.0-362.el9.x86_64")
    create.add_argument("--role", default="node", help="node or frontend")
    create.add_argument("--stopped", action="store_true", help="services stopped at creation")
    _add_output_style_option(create)
    _add_delay_options(create, defaults=True)
    show = nsub.add_parser("show", help="print the node state as JSON")
    show.add_argument("root")

    fault = sub.add_parser("fault", help=f"set or clear a fault ({', '.join(FAULTS)})")
    fault.add_argument("root")
    fault.add_argument("fault")
    fault.add_argument("--clear", action="store_true")

    delay = sub.add_parser("delay", help="change delays of a node")
    delay.add_argument("root")
    _add_delay_options(delay, defaults=False)

    style = sub.add_parser("style", help="show or set how the tools word their output")
    style.add_argument("root")
    style.add_argument("style", nargs="?", choices=OUTPUT_STYLES)

    reboot = sub.add_parser("reboot", help="reboot a node now")
    reboot.add_argument("root")

    app = sub.add_parser("app", help="an application that uses SuperSockets (holds them while it runs)")
    app.add_argument("root")
    app.add_argument("name")
    app.add_argument("action", choices=("add", "start", "stop", "status"))

    sia = sub.add_parser("sia", help="write a SIA and print its path")
    sia.add_argument("dir")
    sia.add_argument("version")
    sia.add_argument("--corrupt", action="store_true")

    jour = sub.add_parser("journal", help="print the merged journal of nodes")
    jour.add_argument("roots", nargs="+")
    jour.add_argument(
        "--check-one-down", action="store_true", help="exit 1 when more than one node was down at the same time"
    )

    cluster = sub.add_parser("cluster", help="create DIR/node1..N and print their minion config")
    cluster.add_argument("dir")
    cluster.add_argument("--nodes", type=int, default=3)
    cluster.add_argument("--version", default="5.25.2")
    cluster.add_argument("--product", default="PX")
    _add_output_style_option(cluster)
    _add_delay_options(cluster, defaults=True)
    netmgr.add_parser(sub)
    return p


def _delays(args) -> dict:
    return {
        k: getattr(args, k)
        for k in ("build", "install", "link_training", "reboot")
        if getattr(args, k, None) is not None
    }


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except SimError as exc:
        print(f"expressware-sim: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"expressware-sim: error: {exc}", file=sys.stderr)
        return 1


def _run(args) -> int:
    if args.cmd == "node" and args.node_cmd == "create":
        node = create_node(
            args.root,
            name=args.name,
            version=args.version,
            product=args.product,
            arch=args.arch,
            kernel=args.kernel,
            role=args.role,
            running=not args.stopped,
            output_style=args.output_style,
            **_delays(args),
        )
        print(json.dumps(node.state(), indent=2))
        return 0
    if args.cmd == "node" and args.node_cmd == "show":
        node = Node(args.root)
        state = node.state()
        state["minion_config"] = node.minion_config()
        print(json.dumps(state, indent=2))
        return 0
    if args.cmd == "fault":
        node = Node(args.root)
        if args.fault == "all":
            if not args.clear:
                raise SimError("fault 'all' can only be cleared (use --clear)")
            node.clear_faults()
        else:
            node.set_fault(args.fault, not args.clear)
        print(json.dumps(node.state()["faults"], indent=2))
        return 0
    if args.cmd == "delay":
        node = Node(args.root)
        delays = _delays(args)
        if delays:
            node.set_delays(**delays)
        print(json.dumps(node.state()["delays"], indent=2))
        return 0
    if args.cmd == "app":
        node = Node(args.root)
        if args.action == "add":
            node.add_application(args.name)
        elif args.action in ("start", "stop"):
            if not node.set_application(args.name, args.action == "start"):
                raise SimError(f"{node.name} has no application {args.name!r} (add it first)")
        running = node.application_running(args.name)
        print(f"{args.name}: {'unknown' if running is None else 'running' if running else 'stopped'}")
        return 0 if running is not None else 3
    if args.cmd == "style":
        node = Node(args.root)
        if args.style:
            node.set_output_style(args.style)
        print(node.state()["output_style"])
        return 0
    if args.cmd == "reboot":
        node = Node(args.root)
        node.reboot()
        print(f"{node.name}: rebooting until {node.state()['reboot_until']:.3f}")
        return 0
    if args.cmd == "sia":
        print(write_sia(args.dir, args.version, corrupt=args.corrupt))
        return 0
    if args.cmd == "journal":
        for root in args.roots:
            Node(root)  # bad input -> clear error
        for entry in merged_journal(args.roots):
            print(json.dumps(entry))
        if args.check_one_down:
            worst = max_nodes_down(args.roots)
            if worst > 1:
                print(f"FAILED: {worst} nodes were down (not active) at the same time", file=sys.stderr)
                return 1
            print(f"OK: at most {worst} node(s) down at any time", file=sys.stderr)
        return 0
    if args.cmd == "cluster":
        if args.nodes < 1:
            raise SimError("--nodes must be at least 1")
        if args.product not in PRODUCTS:
            raise SimError(f"unknown product {args.product!r} (known: {', '.join(PRODUCTS)})")
        base = Path(os.path.abspath(args.dir))
        configs = {}
        for i in range(1, args.nodes + 1):
            node = create_node(
                base / f"node{i}",
                name=f"node{i}",
                version=args.version,
                product=args.product,
                output_style=args.output_style,
                **_delays(args),
            )
            configs[node.name] = node.minion_config()
        print(json.dumps(configs, indent=2))
        return 0
    if args.cmd == "netmgr":
        return netmgr.main_args(args)
    raise SimError(f"unknown command {args.cmd}")  # pragma: no cover
