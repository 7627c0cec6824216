"""The simulated eXpressWare stack as plain functions on a node's state dict.

Services in start order, packages, versions, faults, delays, reboots and link training, the node's public view:
what :class:`expressware_sim.node.Node` runs inside its locked transaction (:class:`Tx`). No files, no locks, no
clock of its own (``now`` comes with the transaction).
"""

from __future__ import annotations

import zlib
from pathlib import Path

from .output import style_of
from .versions import SimError, rpm_fields

PRODUCTS = ("PX", "IX", "MX")
ROLES = ("node", "frontend")
FAULTS = ("stop-blocked", "start-fails-until-reboot", "never-active", "build-fails")
DELAYS = ("build", "install", "link_training", "reboot")
DEFAULT_DELAYS = {"build": 0.5, "install": 0.2, "link_training": 0.5, "reboot": 0.5}
FRONTEND_PACKAGES = ("Dolphin-NetworkManager", "Dolphin-NetworkHosts")


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


def next_pid(st: dict) -> int:
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
            svc["pid"] = next_pid(st) if unit == "dis_nodemgr" else None
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
        svc["pid"] = next_pid(st) if unit == "dis_nodemgr" else None
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
