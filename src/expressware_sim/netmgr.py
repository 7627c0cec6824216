"""The Network Manager of a simulated Cluster Management Node (frontend).

The real Network Manager watches every Cluster Node's node manager and links, and
runs a user-definable notification script when the interconnect state changes
(facts file §4.2): ``UP``, ``REDUCED``, ``DEGRADED``, ``FAILED``, ``UNSTABLE``.
Here it is a small configuration in the frontend's root
(``var/lib/expressware-sim/netmgr.json``): the member node roots, the script and
how the state and the node reach it (an argument position or an environment
variable: the vendor does not document which, so both are configurable).

The state, from the member nodes (the worst one wins):

- ``FAILED``: a member is rebooting (its machine is gone) or cannot be read;
- ``REDUCED``: a member's node manager is not running (``dis_services stop``);
- ``DEGRADED``: every node manager runs, but a member is not active (its links
  train or never come up), or the operator degraded the cluster (:meth:`degrade`,
  ``expressware-sim netmgr degrade``: links disabled in dis_admin);
- ``UP``: every member is active;
- ``UNSTABLE`` (only when configured, ``unstable_changes`` > 0): the state above
  changed at least ``unstable_changes`` times within ``unstable_window`` seconds,
  after the first ``unstable_grace`` seconds of operation.

Like the nodes, it has no process of its own unless one runs it:
:meth:`NetworkManager.step` looks once and runs the script for every change;
:meth:`NetworkManager.run` (``expressware-sim netmgr run``) looks every
``interval`` seconds and runs the scripts one after the other in a thread, so a
slow script never delays the next look. Every change and every script run is
journaled in the frontend's journal (``cluster-state`` events, ``notify``
commands).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from . import journal as _journal
from .node import NODE_DIR_REL, Node, _atomic_write_json
from .versions import SimError

NETMGR_FILE_REL = NODE_DIR_REL / "netmgr.json"
NETMGR_LOCK_REL = NODE_DIR_REL / "netmgr.lock"
STATES = ("UP", "REDUCED", "DEGRADED", "FAILED", "UNSTABLE")
#: How bad a state is: the worst member decides.
_RANK = {"UP": 0, "DEGRADED": 1, "REDUCED": 2, "FAILED": 3}
SCRIPT_TIMEOUT = 60

DEFAULT_CONFIG = {
    "members": [],
    "script": None,
    "state_arg": 1,
    "state_env": None,
    "node_arg": 2,
    "node_env": None,
    "env": {},
    "unstable_changes": 0,
    "unstable_window": 10.0,
    "unstable_grace": 60.0,
}


def member_state(state: dict | None) -> str:
    """What the Network Manager sees of one member (a node's public state, None: unreadable)."""
    if state is None or state.get("rebooting"):
        return "FAILED"
    if not state["services"]["dis_nodemgr"]["running"]:
        return "REDUCED"
    if not state["active"]:
        return "DEGRADED"
    return "UP"


def internal_state(members: dict, degraded: bool = False) -> tuple[str, str | None]:
    """``(state, node)`` from ``{name: public state or None}``: the worst member's
    state and that member (the first by name); ``DEGRADED`` at least when ``degraded``."""
    worst, culprit = "UP", None
    for name in sorted(members):
        seen = member_state(members[name])
        if _RANK[seen] > _RANK[worst]:
            worst, culprit = seen, name
    if degraded and worst == "UP":
        worst = "DEGRADED"
    return worst, culprit


def external_state(internal: str, changes: list, now: float, started: float, config: dict) -> str:
    """The state the Network Manager shows: ``UNSTABLE`` while the internal state
    changes often (when configured), else the internal one."""
    threshold = config["unstable_changes"]
    if not threshold or now - started < config["unstable_grace"]:
        return internal
    recent = [t for t in changes if now - t <= config["unstable_window"]]
    return "UNSTABLE" if len(recent) >= threshold else internal


def _check_config(config: dict) -> dict:
    unknown = set(config) - set(DEFAULT_CONFIG)
    if unknown:
        raise SimError(f"unknown Network Manager settings: {', '.join(sorted(unknown))}")
    merged = dict(DEFAULT_CONFIG, **config)
    for key in ("state_arg", "node_arg"):
        value = merged[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SimError(f"{key} must be an argument position >= 1 or None, not {value!r}")
    for key in ("state_env", "node_env"):
        value = merged[key]
        if value is not None and (not isinstance(value, str) or not value.isidentifier()):
            raise SimError(f"{key} must be an environment variable name or None, not {value!r}")
    if merged["state_arg"] is None and merged["state_env"] is None:
        raise SimError("the state must reach the script somehow: state_arg or state_env")
    if merged["state_arg"] is not None and merged["state_arg"] == merged["node_arg"]:
        raise SimError("state_arg and node_arg name the same position")
    if not isinstance(merged["env"], dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in merged["env"].items()
    ):
        raise SimError("env must map variable names to text")
    if merged["script"] is not None:
        merged["script"] = str(Path(merged["script"]).resolve())
    merged["members"] = [str(Path(root).resolve()) for root in merged["members"]]
    for root in merged["members"]:
        Node(root)  # a member must be a simulated node
    for key in ("unstable_window", "unstable_grace"):
        merged[key] = float(merged[key])
    if (
        isinstance(merged["unstable_changes"], bool)
        or not isinstance(merged["unstable_changes"], int)
        or merged["unstable_changes"] < 0
    ):
        raise SimError(f"unstable_changes must be a count >= 0, not {merged['unstable_changes']!r}")
    return merged


def notify_command(config: dict, state: str, node: str | None) -> tuple[list[str], dict]:
    """The script's argument list and environment for one change, as configured."""
    positions = {}
    if config["state_arg"] is not None:
        positions[config["state_arg"]] = state
    if config["node_arg"] is not None:
        positions[config["node_arg"]] = node or ""
    argv = [config["script"]] + [positions.get(i, "") for i in range(1, max(positions, default=0) + 1)]
    env = dict(os.environ)
    env.update(config["env"])
    if config["state_env"]:
        env[config["state_env"]] = state
    if config["node_env"]:
        env[config["node_env"]] = node or ""
    return argv, env


#: How the tests and ``bench/frontend_gate.py`` install ``expressware.notify`` (its pillar ``state_from`` and
#: ``node_from``) and configure this Network Manager to match: the state in an environment variable, the node as
#: the script's first argument.
SCRIPT_STATE_FROM, SCRIPT_NODE_FROM = "env:DIS_CLUSTER_STATE", "arg:1"


def script_options(script: str, conf: str) -> list[str]:
    """``netmgr configure`` options that run ``script`` (``expressware.notify``'s, whose configuration file is
    ``conf``) the way :data:`SCRIPT_STATE_FROM` and :data:`SCRIPT_NODE_FROM` say."""
    return [
        "--script",
        str(script),
        "--no-state-arg",
        "--state-env",
        SCRIPT_STATE_FROM.split(":", 1)[1],
        "--node-arg",
        SCRIPT_NODE_FROM.split(":", 1)[1],
        "--env",
        f"EXPRESSWARE_NOTIFY_CONF={conf}",
    ]


class NetworkManager:
    """The Network Manager of the simulated frontend at ``root``."""

    def __init__(self, root):
        self.frontend = Node(root)
        self.root = self.frontend.root
        self.file = self.root / NETMGR_FILE_REL

    # -- configuration and state ---------------------------------------------

    @contextlib.contextmanager
    def _locked(self):
        fd = os.open(self.root / NETMGR_LOCK_REL, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _load(self) -> dict:
        try:
            with open(self.file, encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            raise SimError(f"{self.root} has no Network Manager (configure it first)") from None

    def configure(self, **settings) -> dict:
        """Set up (or change) the Network Manager; it starts on the current state of
        the members, without notifying it (the next change is notified)."""
        with self._locked():
            try:
                saved = self._load()
            except SimError:
                saved = {"config": {}}
            config = _check_config(dict(saved["config"], **settings))
            if "started" in saved:
                saved["config"] = config
                _atomic_write_json(self.file, saved)
                return saved
            now = time.time()
            state, node = internal_state(self._members(config), False)
            saved = {
                "config": config,
                "started": now,
                "degraded": False,
                "internal": state,
                "state": state,
                "node": node,
                "cause": node,
                "changes": [],
                "seq": 0,
            }
            _atomic_write_json(self.file, saved)
            self._journal(
                [
                    {
                        "time": now,
                        "node": self.frontend.name,
                        "event": "cluster-state",
                        "state": state,
                        "previous": None,
                        "cause": node,
                    }
                ]
            )
            return saved

    def status(self) -> dict:
        saved = self._load()
        return {
            "state": saved["state"],
            "internal": saved["internal"],
            "node": saved["node"],
            "degraded": saved["degraded"],
            "seq": saved["seq"],
            "members": saved["config"]["members"],
        }

    def degrade(self, on: bool = True) -> None:
        """Disable links (as in dis_admin): the cluster is at least ``DEGRADED``."""
        with self._locked():
            saved = self._load()
            saved["degraded"] = bool(on)
            _atomic_write_json(self.file, saved)

    @staticmethod
    def _members(config: dict) -> dict:
        seen = {}
        for root in config["members"]:
            try:
                node = Node(root)
                seen[node.name] = node.state()  # settles the node: its transitions are journaled
            except (SimError, OSError, ValueError):
                seen[Path(root).name] = None
        return seen

    def _journal(self, entries) -> None:
        _journal.append_entries(self.root, entries)

    # -- looking and notifying ---------------------------------------------------

    def observe(self, now: float | None = None) -> list[dict]:
        """Look at the members once; return the changes of the shown state to notify
        (``{"state", "previous", "node", "seq", "time"}``), journaled."""
        with self._locked():
            saved = self._load()
            before = json.dumps(saved, sort_keys=True)
            config = saved["config"]
            now = time.time() if now is None else now
            internal, culprit = internal_state(self._members(config), saved["degraded"])
            if internal != saved["internal"]:
                saved["changes"] = [t for t in saved["changes"] if now - t <= config["unstable_window"]] + [now]
                saved["internal"] = internal
                # The node the change concerns: the one now worst; back to UP, the one that was.
                saved["cause"] = culprit if internal != "UP" else saved.get("cause")
            shown = external_state(internal, saved["changes"], now, saved["started"], config)
            notices = []
            if shown != saved["state"]:
                saved["seq"] += 1
                notices.append(
                    {
                        "state": shown,
                        "previous": saved["state"],
                        "node": saved.get("cause"),
                        "seq": saved["seq"],
                        "time": now,
                    }
                )
                saved["state"], saved["node"] = shown, saved.get("cause")
            if json.dumps(saved, sort_keys=True) != before:
                _atomic_write_json(self.file, saved)
            self._journal(
                [
                    {
                        "time": n["time"],
                        "node": self.frontend.name,
                        "event": "cluster-state",
                        "state": n["state"],
                        "previous": n["previous"],
                        "cause": n["node"],
                        "seq": n["seq"],
                    }
                    for n in notices
                ]
            )
            return notices

    def notify(self, notice: dict) -> subprocess.CompletedProcess | None:
        """Run the configured script for one change (None when no script is set); journaled."""
        config = self._load()["config"]
        if not config["script"]:
            return None
        argv, env = notify_command(config, notice["state"], notice["node"])
        start = time.time()
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False)
            code, stderr = done.returncode, done.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            done, code, stderr = None, 127, str(exc)
        self._journal(
            [
                {
                    "time": start,
                    "node": self.frontend.name,
                    "command": "notify " + notice["state"],
                    "exit": code,
                    "outcome": "ok" if code == 0 else "failed",
                    "end": time.time(),
                    "argv": argv[1:],
                    "seq": notice["seq"],
                    "stderr": stderr[-2000:],
                }
            ]
        )
        return done

    def step(self) -> list[dict]:
        """Look once and run the script for each change, in order (for tests and ``netmgr step``)."""
        notices = self.observe()
        for notice in notices:
            self.notify(notice)
        return notices

    def run(self, interval: float = 0.1, stop: threading.Event | None = None, duration: float | None = None) -> None:
        """Look every ``interval`` seconds until ``stop`` is set or ``duration`` has
        passed; the scripts run one after the other in a thread of their own."""
        stop = stop or threading.Event()
        pending: queue.Queue = queue.Queue()

        def notifier():
            while True:
                notice = pending.get()
                if notice is None:
                    return
                self.notify(notice)

        worker = threading.Thread(target=notifier, name="netmgr-notify", daemon=True)
        worker.start()
        end = None if duration is None else time.monotonic() + duration
        try:
            while not stop.is_set() and (end is None or time.monotonic() < end):
                for notice in self.observe():
                    pending.put(notice)
                stop.wait(interval)
        finally:
            pending.put(None)
            worker.join(timeout=SCRIPT_TIMEOUT)


# -- command line (``expressware-sim netmgr ...``; hooked into cli.py) ------------


def add_parser(sub) -> None:
    netmgr = sub.add_parser("netmgr", help="the frontend's Network Manager (cluster state, notification script)")
    nsub = netmgr.add_subparsers(dest="netmgr_cmd", required=True, metavar="SUBCOMMAND")
    conf = nsub.add_parser("configure", help="set up the Network Manager on a frontend root")
    conf.add_argument("root", help="the frontend's node root")
    conf.add_argument("--member", action="append", dest="members", metavar="ROOT", help="a Cluster Node root")
    conf.add_argument("--script", help="the notification script")
    conf.add_argument("--state-arg", type=int, help="argument position of the state (default 1)")
    conf.add_argument("--state-env", help="environment variable for the state")
    conf.add_argument("--node-arg", type=int, help="argument position of the node (default 2)")
    conf.add_argument("--node-env", help="environment variable for the node")
    conf.add_argument("--no-node-arg", action="store_true", help="the node is not passed as an argument")
    conf.add_argument("--no-state-arg", action="store_true", help="the state is not passed as an argument")
    conf.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="environment of the script")
    conf.add_argument("--unstable-changes", type=int)
    conf.add_argument("--unstable-window", type=float)
    conf.add_argument("--unstable-grace", type=float)
    for name, text in (("show", "print the cluster state as JSON"), ("step", "look once, notify every change")):
        nsub.add_parser(name, help=text).add_argument("root")
    degrade = nsub.add_parser("degrade", help="disable links: the cluster is DEGRADED (--clear: enable them)")
    degrade.add_argument("root")
    degrade.add_argument("--clear", action="store_true")
    run = nsub.add_parser("run", help="look every --interval seconds and notify every change")
    run.add_argument("root")
    run.add_argument("--interval", type=float, default=0.1)
    run.add_argument("--duration", type=float, help="stop after this many seconds (default: until killed)")


def main_args(args) -> int:
    manager = NetworkManager(args.root)
    if args.netmgr_cmd == "configure":
        settings = {}
        for key in (
            "members",
            "script",
            "state_arg",
            "state_env",
            "node_arg",
            "node_env",
            "unstable_changes",
            "unstable_window",
            "unstable_grace",
        ):
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        if args.no_node_arg:
            settings["node_arg"] = None
        if args.no_state_arg:
            settings["state_arg"] = None
        if args.env:
            pairs = [item.partition("=") for item in args.env]
            if any(not sep or not name for name, sep, _ in pairs):
                raise SimError("--env takes NAME=VALUE")
            settings["env"] = {name: value for name, _, value in pairs}
        manager.configure(**settings)
    elif args.netmgr_cmd == "degrade":
        manager.degrade(not args.clear)
    elif args.netmgr_cmd == "step":
        manager.step()
    elif args.netmgr_cmd == "run":
        stop = threading.Event()
        # Stopped like a daemon: a script that runs finishes, and is journaled.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        manager.run(interval=args.interval, stop=stop, duration=args.duration)
    print(json.dumps(manager.status(), indent=2))
    return 0
