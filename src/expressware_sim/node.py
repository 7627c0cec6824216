"""A simulated eXpressWare Cluster Node: state file, locking, services, time.

All state lives in ``<root>/var/lib/expressware-sim/node.json``.  Every
read-modify-write happens inside :meth:`Node.transaction`, which holds an
exclusive ``fcntl.flock`` on ``node.lock`` (never while sleeping), runs
:func:`settle` before and after the change, writes the file atomically
(temp file + ``os.replace``) and appends the resulting journal entries.

There is no background process: link training and reboots are evaluated
lazily from timestamps by :func:`settle`.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import re
import sys
import time
import zlib
from pathlib import Path

from . import journal as _journal
from .output import DEFAULT_OUTPUT_STYLE, style_of, validate_output_style
from .versions import SimError, parse_version, rpm_fields

NODE_DIR_REL = Path("var/lib/expressware-sim")
NODE_FILE_REL = NODE_DIR_REL / "node.json"
LOCK_FILE_REL = NODE_DIR_REL / "node.lock"
SIA_LOCK_REL = NODE_DIR_REL / "sia.lock"
PREFIX_REL = Path("opt/DIS")
RPM_REL = Path("usr/bin/rpm")
WORKDIR_REL = Path("var/cache/expressware")

FORMAT = 1
PRODUCTS = ("PX", "IX", "MX")
ROLES = ("node", "frontend")
FAULTS = ("stop-blocked", "start-fails-until-reboot", "never-active", "build-fails")
DELAYS = ("build", "install", "link_training", "reboot")
DEFAULT_DELAYS = {"build": 0.5, "install": 0.2, "link_training": 0.5, "reboot": 0.5}
FRONTEND_PACKAGES = ("Dolphin-NetworkManager", "Dolphin-NetworkHosts")

_ARCH_RE = re.compile(r"^[A-Za-z0-9_]+$")
_KERNEL_RE = re.compile(r"^[A-Za-z0-9._+~-]+$")


# --------------------------------------------------------------------------
# static tables
# --------------------------------------------------------------------------


def service_table(product: str) -> list[tuple[str, str, str]]:
    """Services in START order as ``(unit, start/stop label, status name)``."""
    low = product.lower()
    return [
        ("dis_kosif", "KOSIF driver", "KOSIF"),
        (f"dis_{low}", f"{product} driver", product),
        ("dis_irm", "IRM driver", "IRM"),
        ("dis_nodemgr", "Node Manager", "Node Manager"),
        ("dis_sisci", "SISCI driver", "SISCI"),
        ("dis_supersockets", "SuperSockets drivers", "SuperSockets"),
    ]


def node_packages(product: str) -> tuple[str, ...]:
    return (f"Dolphin-{product}", "Dolphin-SISCI", "Dolphin-SuperSockets")


def packages_for(target: str, product: str) -> tuple[str, ...]:
    return node_packages(product) if target == "node" else FRONTEND_PACKAGES


def status_line(action: str, label: str, ok: bool) -> str:
    """``Stopping Dolphin <label>`` padded so that ``[`` is at column 60."""
    return f"{action} Dolphin {label}".ljust(59) + ("[  OK  ]" if ok else "[FAILED]")


def validate_delay(name: str, value) -> float:
    if name not in DELAYS:
        raise SimError(f"unknown delay {name!r} (known: {', '.join(DELAYS)})")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise SimError(f"delay {name} must be a number of seconds, not {value!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise SimError(f"delay {name} must be a finite number >= 0, not {value!r}")
    return seconds


def validate_fault(name: str) -> str:
    if name not in FAULTS:
        raise SimError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
    return name


# --------------------------------------------------------------------------
# pure state logic (operates on the dict loaded from node.json)
# --------------------------------------------------------------------------


class Tx:
    """One locked transaction: the state dict, the moment ``now`` and new journal events."""

    def __init__(self, root: Path, st: dict, now: float):
        self.root = root
        self.st = st
        self.now = now
        self.events: list[dict] = []

    def event(self, name: str, t: float | None = None, **extra) -> None:
        entry = {"time": self.now if t is None else t, "node": self.st["name"], "event": name}
        entry.update(extra)
        self.events.append(entry)


def installed_version(st: dict, target: str = "node") -> str | None:
    names = packages_for(target, st["product"])
    pkg = st["packages"].get(names[0])
    return pkg["version"] if pkg else None


def running_services(st: dict) -> list[str]:
    return [u for u, _, _ in service_table(st["product"]) if st["services"][u]["running"]]


def running_version(st: dict) -> str | None:
    """The version the running stack runs: that of the lowest running service."""
    for unit, _, _ in service_table(st["product"]):
        svc = st["services"][unit]
        if svc["running"]:
            return svc["version"]
    return None


def all_running(st: dict) -> bool:
    return all(st["services"][u]["running"] for u, _, _ in service_table(st["product"]))


def rebooting(st: dict) -> bool:
    return st.get("reboot_until") is not None


def _becomes_active_at(st: dict) -> float:
    """The earliest moment the node can count as active given its history."""
    candidates = [st["started_at"] + st["delays"]["link_training"]]
    if st.get("never_active_cleared_at") is not None:
        candidates.append(st["never_active_cleared_at"])
    if st.get("last_transition") is not None:
        candidates.append(st["last_transition"])
    return max(candidates)


def compute_active(st: dict, now: float) -> bool:
    """Active: all services run, not rebooting, links trained, and no never-active
    fault set before the last start (a node that is up when the fault is set stays
    up until its next start or reboot).

    Once the node has been journaled active it stays active until a change
    (stop, reboot, fault) makes it inactive, so changing the link-training
    delay later does not retroactively de-activate it.
    """
    if rebooting(st) or not all_running(st) or st.get("started_at") is None:
        return False
    if st["faults"]["never-active"] and st["started_at"] >= st.get("never_active_set_at", 0):
        # The links of a start after the fault was set never train.
        return False
    if st.get("active"):
        return True
    return now >= _becomes_active_at(st)


def link_training_until(st: dict) -> float | None:
    if rebooting(st) or not all_running(st) or st.get("active") or st.get("started_at") is None:
        return None
    return st["started_at"] + st["delays"]["link_training"]


def _next_pid(st: dict) -> int:
    st["pid_counter"] = st.get("pid_counter", 0) + 1
    base = 1000 + zlib.crc32(st["name"].encode()) % 2000
    return base + 97 * st["pid_counter"] % 29000


def settle(tx: Tx) -> None:
    """Apply everything time has done since the last look, journaling true times."""
    st, now = tx.st, tx.now
    until = st.get("reboot_until")
    if until is not None and now >= until:
        # The reboot is over: services come up on the installed version.
        st["reboot_until"] = None
        st["faults"]["start-fails-until-reboot"] = False
        version = installed_version(st)
        for unit, _, _ in service_table(st["product"]):
            svc = st["services"][unit]
            svc["running"] = True
            svc["version"] = version
            svc["pid"] = _next_pid(st) if unit == "dis_nodemgr" else None
        st["started_at"] = until
        tx.event("booted", t=until, version=version)
    active = compute_active(st, now)
    if active != bool(st.get("active")):
        if active:
            t = min(_becomes_active_at(st), now)
            tx.event("active", t=t, version=running_version(st))
        else:
            t = now
            tx.event("down", t=t)
        st["active"] = active
        st["last_transition"] = t


def stop_services(tx: Tx) -> list[tuple[str, bool]]:
    """``dis_services stop`` semantics; returns ``[(label, ok)]`` in stop order."""
    st = tx.st
    table = service_table(st["product"])
    # An application that runs holds SuperSockets, as does the stop-blocked fault.
    holders = st["faults"]["stop-blocked"] or any(app["running"] for app in st.get("applications", {}).values())
    blocked = holders and st["services"]["dis_supersockets"]["running"]
    held = {"dis_supersockets", "dis_irm", table[1][0], "dis_kosif"}
    results = []
    for unit, label, _ in reversed(table):
        svc = st["services"][unit]
        if not svc["running"]:
            results.append((label, True))
            continue
        if blocked and unit in held:
            results.append((label, False))
            continue
        svc["running"] = False
        svc["version"] = None
        svc["pid"] = None
        results.append((label, True))
    settle(tx)
    return results


def start_services(tx: Tx, version: str | None = None) -> list[tuple[str, bool]]:
    """``dis_services start`` semantics; returns ``[(label, ok)]`` in start order.

    Services start on ``version`` (default: the installed version).  A service
    fails when a service below it is not running, when the node is rebooting,
    and (fault ``start-fails-until-reboot``) from the IRM driver on.
    """
    st = tx.st
    if version is None:
        version = installed_version(st)
    table = service_table(st["product"])
    fragmented = st["faults"]["start-fails-until-reboot"]
    results = []
    started = False
    lower_ok = True
    for index, (unit, label, _) in enumerate(table):
        svc = st["services"][unit]
        if svc["running"] and not rebooting(st):
            results.append((label, True))
            continue
        if rebooting(st) or not lower_ok or (fragmented and index >= 2):
            results.append((label, False))
            lower_ok = False
            continue
        svc["running"] = True
        svc["version"] = version
        svc["pid"] = _next_pid(st) if unit == "dis_nodemgr" else None
        started = True
        results.append((label, True))
    if started:
        st["started_at"] = tx.now
    settle(tx)
    return results


def validate_application(name: str) -> str:
    if not isinstance(name, str) or not name or not all(ch.isalnum() or ch in "._@-" for ch in name):
        raise SimError(f"application name {name!r} must be letters, digits, '.', '_', '@' or '-'")
    return name


def begin_reboot(tx: Tx, reason: str = "") -> None:
    st = tx.st
    st["reboot_until"] = tx.now + st["delays"]["reboot"]
    for app in st.get("applications", {}).values():
        app["running"] = False
    for unit, _, _ in service_table(st["product"]):
        svc = st["services"][unit]
        svc["running"] = False
        svc["version"] = None
        svc["pid"] = None
    extra = {"until": st["reboot_until"]}
    if reason:
        extra["reason"] = reason
    tx.event("reboot", **extra)
    settle(tx)


def install_packages(tx: Tx, target: str, version: str) -> list[str]:
    """Write the target's packages at ``version`` into the simulated RPM database."""
    st = tx.st
    names = packages_for(target, st["product"])
    for name in names:
        st["packages"][name] = {"version": version, "arch": st["arch"], "installtime": tx.now}
    tx.event("installed", version=version, target=target, packages=list(names))
    return list(names)


def set_fault_in(tx: Tx, name: str, on: bool) -> None:
    st = tx.st
    validate_fault(name)
    was = bool(st["faults"][name])
    st["faults"][name] = bool(on)
    if was != bool(on):
        if name == "never-active" and not on:
            st["never_active_cleared_at"] = tx.now
        if name == "never-active" and on:
            st["never_active_set_at"] = tx.now
        tx.event("fault", fault=name, on=bool(on))


def public_state(root: Path, st: dict, now: float) -> dict:
    table = service_table(st["product"])
    services = {}
    for unit, label, short in table:
        svc = st["services"][unit]
        services[unit] = {
            "name": short,
            "label": label,
            "running": bool(svc["running"]),
            "version": svc["version"],
            "pid": svc.get("pid"),
        }
    packages = {}
    for name, pkg in sorted(st["packages"].items()):
        v, r = rpm_fields(pkg["version"])
        packages[name] = {"version": pkg["version"], "rpm": f"{v}-{r}", "arch": pkg["arch"]}
    return {
        "name": st["name"],
        "root": str(root),
        "product": st["product"],
        "arch": st["arch"],
        "kernel": st["kernel"],
        "role": st["role"],
        "installed_version": installed_version(st, "node"),
        "frontend_version": installed_version(st, "frontend") if st["role"] == "frontend" else None,
        "running_version": running_version(st),
        "packages": packages,
        "services": services,
        "all_running": all_running(st),
        "active": bool(st.get("active")),
        "rebooting": rebooting(st),
        "reboot_until": st.get("reboot_until"),
        "started_at": st.get("started_at"),
        "link_training_until": link_training_until(st),
        "faults": dict(st["faults"]),
        "delays": dict(st["delays"]),
        "applications": {name: dict(app) for name, app in st.get("applications", {}).items()},
        "output_style": style_of(st),
        "now": now,
    }


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------


def find_node_root(start) -> Path | None:
    """Walk up from ``start`` to the first directory holding ``NODE_FILE_REL``."""
    path = Path(os.path.abspath(start))
    for candidate in (path, *path.parents):
        if (candidate / NODE_FILE_REL).is_file():
            return candidate
    return None


def _atomic_write_json(path: Path, data: dict) -> None:
    # Not tempfile.mkstemp: importing tempfile is a fifth of a simulated tool's start-up.
    tmp = str(path.parent / f".node.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def package_dir() -> Path:
    """The directory that contains the ``expressware_sim`` package."""
    return Path(__file__).resolve().parent.parent


def _script_text(depth: int, func: str, tool: str, name: str) -> str:
    python = os.path.abspath(sys.executable)
    # -S: the tools need the standard library only; without site-packages (and the .pth
    # files of editable installs) a tool starts in half the time, nearer the real, compiled tools.
    if len(python) <= 120 and not any(c.isspace() for c in python):
        head = f"#!{python} -S\n"
    else:  # shebang lines cannot hold this path: sh/python polyglot instead
        head = "#!/bin/sh\n''''exec " + _sh_quote(python) + ' -S "$0" "$@" #' + "'''\n"
    climb = "os.path.realpath(__file__)"
    for _ in range(depth):
        climb = f"os.path.dirname({climb})"
    return (
        head
        + f'"""Simulated {tool} of eXpressWare node {name!r} (generated by expressware_sim)."""\n'
        + "import os\n"
        + "import sys\n"
        + f"sys.path.insert(0, {str(package_dir())!r})\n"
        + f"ROOT = {climb}\n"
        + f"from expressware_sim.tools import {func}\n"
        + f"sys.exit({func}(ROOT, sys.argv[1:]))\n"
    )


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _write_script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o755)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


class Node:
    """Handle on an existing simulated node root."""

    def __init__(self, root):
        self.root = Path(os.path.abspath(root))
        self.state_file = self.root / NODE_FILE_REL
        if not self.state_file.is_file():
            raise SimError(f"{self.root} is not a simulated eXpressWare node (no {NODE_FILE_REL})")
        self._name = None

    # paths ---------------------------------------------------------------
    @property
    def name(self) -> str:
        if self._name is None:
            self._name = self._load()["name"]
        return self._name

    @property
    def prefix(self) -> Path:
        return self.root / PREFIX_REL

    @property
    def dis_services(self) -> Path:
        return self.prefix / "sbin" / "dis_services"

    @property
    def dis_diag(self) -> Path:
        return self.prefix / "sbin" / "dis_diag"

    @property
    def rpm(self) -> Path:
        return self.root / RPM_REL

    @property
    def workdir(self) -> Path:
        return self.root / WORKDIR_REL

    @property
    def journal_file(self) -> Path:
        return _journal.journal_path(self.root)

    def minion_config(self) -> dict:
        return {
            "expressware": {
                "prefix": str(self.prefix),
                "rpm": str(self.rpm),
                "workdir": str(self.workdir),
            }
        }

    def __repr__(self) -> str:
        return f"Node({str(self.root)!r})"

    # state ---------------------------------------------------------------
    def _load(self) -> dict:
        try:
            with open(self.state_file, encoding="utf-8") as fh:
                st = json.load(fh)
        except FileNotFoundError:
            raise SimError(f"{self.root} is not a simulated eXpressWare node (no {NODE_FILE_REL})") from None
        except ValueError as exc:
            raise SimError(f"{self.state_file} is damaged: {exc}") from None
        if not isinstance(st, dict) or st.get("format") != FORMAT:
            raise SimError(f"{self.state_file} is not a node state file of format {FORMAT}")
        return st

    @contextlib.contextmanager
    def transaction(self):
        """Lock, load, settle, yield a :class:`Tx`, settle, save, journal, unlock."""
        lock_path = self.root / LOCK_FILE_REL
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = self._load()
            before = copy.deepcopy(st)
            tx = Tx(self.root, st, time.time())
            settle(tx)
            yield tx
            settle(tx)
            if tx.st != before:
                _atomic_write_json(self.state_file, tx.st)
            _journal.append_entries(self.root, tx.events)
        finally:
            os.close(fd)  # releases the flock

    def settle(self) -> None:
        with self.transaction():
            pass

    def raw_state(self) -> dict:
        """The settled contents of node.json (a copy)."""
        with self.transaction() as tx:
            return copy.deepcopy(tx.st)

    def state(self) -> dict:
        with self.transaction() as tx:
            return public_state(self.root, tx.st, tx.now)

    def is_active(self) -> bool:
        return self.state()["active"]

    def installed_version(self) -> str | None:
        return self.state()["installed_version"]

    def running_version(self) -> str | None:
        return self.state()["running_version"]

    def set_fault(self, name: str, on: bool = True) -> None:
        validate_fault(name)
        with self.transaction() as tx:
            set_fault_in(tx, name, on)

    def clear_faults(self) -> None:
        with self.transaction() as tx:
            for name in FAULTS:
                set_fault_in(tx, name, False)

    def set_delays(self, **seconds) -> None:
        values = {name: validate_delay(name, value) for name, value in seconds.items()}
        with self.transaction() as tx:
            tx.st["delays"].update(values)

    def add_application(self, name: str, running: bool = True) -> None:
        """Register an application that uses SuperSockets on this node.

        While it runs it holds SuperSockets, so ``dis_services stop`` fails the way
        it does with the ``stop-blocked`` fault. A reboot leaves it stopped.
        """
        validate_application(name)
        with self.transaction() as tx:
            tx.st.setdefault("applications", {})[name] = {"running": bool(running)}
            tx.event("app-add", app=name, running=bool(running))

    def set_application(self, name: str, running: bool) -> bool:
        """Start or stop an application; False if there is no such application."""
        with self.transaction() as tx:
            app = tx.st.get("applications", {}).get(name)
            if app is None:
                return False
            if app["running"] != bool(running):
                app["running"] = bool(running)
                tx.event("app-start" if running else "app-stop", app=name)
            return True

    def application_running(self, name: str) -> bool | None:
        """True/False, or None if there is no such application."""
        app = self.state()["applications"].get(name)
        return None if app is None else app["running"]

    def set_output_style(self, style: str) -> None:
        """Word the tools' output in ``style`` (see :mod:`expressware_sim.output`) from now on."""
        validate_output_style(style)
        with self.transaction() as tx:
            if style_of(tx.st) != style:
                tx.st["output_style"] = style
                tx.event("output-style", style=style)

    def reboot(self) -> None:
        """Reboot the node now (services down for the reboot delay)."""
        with self.transaction() as tx:
            begin_reboot(tx, reason="api")

    def journal(self) -> list[dict]:
        return _journal.read_journal(self.root)

    def log_command(self, command: str, exit_code: int, start: float, outcome: str | None = None, **extra) -> None:
        """Journal a command entry (time = start of the command)."""
        if outcome is None:
            outcome = "ok" if exit_code == 0 else "failed"
        entry = {
            "time": start,
            "node": self.name,
            "command": command,
            "exit": exit_code,
            "outcome": outcome,
            "end": time.time(),
        }
        entry.update(extra)
        _journal.append_entries(self.root, [entry])


def create_node(
    root,
    name: str | None = None,
    version: str = "5.25.2",
    product: str = "PX",
    arch: str = "x86_64",
    kernel: str = "5.14.0-362.el9.x86_64",
    role: str = "node",
    running: bool = True,
    build: float = DEFAULT_DELAYS["build"],
    install: float = DEFAULT_DELAYS["install"],
    link_training: float = DEFAULT_DELAYS["link_training"],
    reboot: float = DEFAULT_DELAYS["reboot"],
    output_style: str = DEFAULT_OUTPUT_STYLE,
) -> Node:
    """Create a simulated node under ``root`` (which must not already be a node).

    ``output_style`` words the tools' output: ``simple`` (§10) or ``dated`` (the vendor's
    own forms, :mod:`expressware_sim.output`).
    """
    root = Path(os.path.abspath(root))
    parse_version(version)
    validate_output_style(output_style)
    if product not in PRODUCTS:
        raise SimError(f"unknown product {product!r} (known: {', '.join(PRODUCTS)})")
    if role not in ROLES:
        raise SimError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    if not isinstance(arch, str) or not _ARCH_RE.match(arch):
        raise SimError(f"invalid architecture {arch!r}")
    if not isinstance(kernel, str) or not _KERNEL_RE.match(kernel):
        raise SimError(f"invalid kernel release {kernel!r}")
    if name is None:
        name = root.name
    if not isinstance(name, str) or not name or any(c in name for c in "\n\r\t"):
        raise SimError(f"invalid node name {name!r}")
    delays = {
        "build": validate_delay("build", build),
        "install": validate_delay("install", install),
        "link_training": validate_delay("link_training", link_training),
        "reboot": validate_delay("reboot", reboot),
    }
    if (root / NODE_FILE_REL).exists():
        raise SimError(f"{root} is already a simulated node")

    now = time.time()
    st = {
        "format": FORMAT,
        "name": name,
        "product": product,
        "arch": arch,
        "kernel": kernel,
        "role": role,
        "created": now,
        "delays": delays,
        "faults": {f: False for f in FAULTS},
        "packages": {},
        "services": {},
        "started_at": None,
        "reboot_until": None,
        "active": False,
        "last_transition": now,
        "never_active_cleared_at": None,
        "pid_counter": 0,
        "output_style": output_style,
    }
    targets = ["node"] + (["frontend"] if role == "frontend" else [])
    for target in targets:
        for pkg in packages_for(target, product):
            st["packages"][pkg] = {"version": version, "arch": arch, "installtime": now}
    for unit, _, _ in service_table(product):
        st["services"][unit] = {"running": False, "version": None, "pid": None}
    if running:
        for unit, _, _ in service_table(product):
            svc = st["services"][unit]
            svc["running"] = True
            svc["version"] = version
            svc["pid"] = _next_pid(st) if unit == "dis_nodemgr" else None
        st["started_at"] = now - delays["link_training"]  # link training already done
        st["active"] = True

    for rel in (NODE_DIR_REL, PREFIX_REL / "sbin", RPM_REL.parent, WORKDIR_REL, _journal.JOURNAL_REL.parent):
        (root / rel).mkdir(parents=True, exist_ok=True)
    _write_script(
        root / PREFIX_REL / "sbin" / "dis_services", _script_text(4, "dis_services_main", "dis_services", name)
    )
    _write_script(root / PREFIX_REL / "sbin" / "dis_diag", _script_text(4, "dis_diag_main", "dis_diag", name))
    _write_script(root / RPM_REL, _script_text(3, "rpm_main", "rpm", name))
    (root / LOCK_FILE_REL).touch()
    _journal.append_entries(
        root,
        [
            {
                "time": now,
                "node": name,
                "event": "created",
                "active": bool(running),
                "version": version,
                "product": product,
                "role": role,
            }
        ],
    )
    _atomic_write_json(root / NODE_FILE_REL, st)  # last: node.json marks a complete node
    return Node(root)
