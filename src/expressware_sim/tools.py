"""The simulated command-line tools: ``dis_services``, ``dis_diag`` and ``rpm``.

Each ``*_main(root, argv)`` is called by a small generated script inside the
node root and returns the exit status.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import sys
import time
import zlib

from .node import Node
from .output import diag_verdict_lines, diag_version_lines, style_of
from .output import status_line as service_status_line
from .stack import (
    all_running,
    installed_version,
    link_training_until,
    rebooting,
    service_table,
    start_services,
    status_line,
    stop_services,
)
from .versions import SimError, rpm_fields

DIS_SERVICES_USAGE = "Usage: dis_services {start|stop|restart|status}"
DIS_DIAG_USAGE = "Usage: dis_diag [-V <verbosity>]"
RPM_DEFAULT_FORMAT = "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n"

ADAPTERS = {"PX": "PXH830", "IX": "IXH610", "MX": "MXH930"}


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _open_node(root, tool: str) -> Node | None:
    try:
        return Node(root)
    except SimError as exc:
        _err(f"{tool}: {exc}")
        return None


def _command(tool: str, argv) -> str:
    return " ".join([tool, *(shlex.quote(a) for a in argv)])


# --------------------------------------------------------------------------
# dis_services
# --------------------------------------------------------------------------


def dis_services_main(root, argv) -> int:
    started = time.time()
    argv = list(argv)
    if len(argv) != 1 or argv[0] not in ("start", "stop", "restart", "status"):
        _err(DIS_SERVICES_USAGE)
        return 2
    action = argv[0]
    node = _open_node(root, "dis_services")
    if node is None:
        return 1
    lines: list[str] = []
    notes: list[str] = []
    with node.transaction() as tx:
        st = tx.st
        if action in ("stop", "restart"):
            results = stop_services(tx)
            lines += [status_line("Stopping", label, ok) for label, ok in results]
        if action in ("start", "restart"):
            if rebooting(st):
                notes.append("dis_services: the node is rebooting; services cannot be started now")
            results = start_services(tx)
            lines += [status_line("Starting", label, ok) for label, ok in results]
        if action == "status":
            style = style_of(st)
            for unit, _, short in service_table(st["product"]):
                lines.append(service_status_line(style, unit, short, st["services"][unit]))
            code = 0 if all_running(st) else 3
        else:
            code = 0 if all(line.endswith("[  OK  ]") for line in lines) else 1
    for line in lines:
        print(line)
    sys.stdout.flush()
    for note in notes:
        _err(note)
    node.log_command(_command("dis_services", argv), code, started)
    return code


# --------------------------------------------------------------------------
# dis_diag
# --------------------------------------------------------------------------


def _parse_verbosity(argv) -> int | None:
    verbosity = 0
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-V":
            if i + 1 >= len(argv):
                return None
            value = argv[i + 1]
            i += 2
        elif arg.startswith("-V") and len(arg) > 2:
            value = arg[2:]
            i += 1
        else:
            return None
        if not re.fullmatch(r"\d+", value):
            return None
        verbosity = int(value)
    return verbosity


def dis_diag_main(root, argv) -> int:
    started = time.time()
    argv = list(argv)
    verbosity = _parse_verbosity(argv)
    if verbosity is None:
        _err(DIS_DIAG_USAGE)
        return 2
    node = _open_node(root, "dis_diag")
    if node is None:
        return 1
    with node.transaction() as tx:
        st = tx.st
        now = tx.now
        table = service_table(st["product"])
        svc = st["services"]
        low_units = [table[0][0], table[1][0], "dis_irm"]
        drivers_loaded = all(svc[u]["running"] for u in low_units) and not rebooting(st)
        active = bool(st.get("active"))
        training_until = link_training_until(st)
        version = svc["dis_irm"]["version"] if svc["dis_irm"]["running"] else installed_version(st)
        node_id = 4 * (zlib.crc32(st["name"].encode()) % 60 + 1)
        peer_id = node_id + 4 if node_id < 240 else 4
        serial = 10000 + zlib.crc32(st["name"].encode()) % 90000
        adapter = ADAPTERS.get(st["product"], st["product"])

        style = style_of(st)
        lines = diag_version_lines(style, version, svc["dis_irm"]["version"] if svc["dis_irm"]["running"] else None)
        lines.append("Number of configured local adapters found: 1")
        lines.append(
            f"Adapter 0 > Type: {adapter}, Mode: NTB, Local NodeId: {node_id}, Serial: {serial}, "
            f"BDF: 09:00.1, Topology type: Direct 2 nodes, Enabled links: 1"
        )
        if verbosity >= 1:
            lines.append("PCIe upstream link: x16 Gen4 (16 GT/s)")
        if active:
            lines.append("Link 0: State: ENABLED, Active: 1, Cable inserted: 1, x16 Gen4")
            if verbosity >= 1:
                lines.append(f"Nodes detected in topology: {node_id:04d} and {peer_id:04d}")
            lines.append(f"Session: Node {peer_id}: Session valid")
        else:
            lines.append("Link 0: State: ENABLED, Active: 0, Cable inserted: 1, x16 Gen4")
            lines.append(f"Session: Node {peer_id}: Session invalid")
        if verbosity >= 9:
            lines.append("Link 0 error counters: CRC errors 0, replay timeouts 0, link down events 0")
        if active:
            lines += diag_verdict_lines(style, True, 0)
            code = 0
        else:
            if rebooting(st):
                reason = "ERROR: The Dolphin drivers are not loaded (the Cluster Node is rebooting)."
            elif not drivers_loaded:
                missing = [short for unit, _, short in table[:3] if not svc[unit]["running"]]
                reason = f"ERROR: The Dolphin drivers are not loaded ({', '.join(missing)} not running)."
            elif not all_running(st):
                missing = [short for unit, _, short in table if not svc[unit]["running"]]
                reason = f"ERROR: Dolphin services are not running: {', '.join(missing)}."
            elif training_until is not None and not st["faults"]["never-active"]:
                reason = (
                    f"ERROR: Link 0 is not active: link training in progress "
                    f"(about {max(0.0, training_until - now):.1f} s left)."
                )
            else:
                reason = "ERROR: Links not active: no link partner detected on link 0."
            lines += [reason, *diag_verdict_lines(style, False, 1)]
            code = 1
    for line in lines:
        print(line)
    sys.stdout.flush()
    node.log_command(_command("dis_diag", argv), code, started)
    return code


# --------------------------------------------------------------------------
# rpm
# --------------------------------------------------------------------------

_TAG_RE = re.compile(r"%(-?\d*)\{([A-Za-z]+)\}")


class _RpmUsage(Exception):
    pass


def _unescape(fmt: str) -> str:
    out = []
    i = 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "a": "\a", "f": "\f", "v": "\v"}
    while i < len(fmt):
        c = fmt[i]
        if c == "\\" and i + 1 < len(fmt) and fmt[i + 1] in escapes:
            out.append(escapes[fmt[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _check_format(fmt: str) -> None:
    for m in _TAG_RE.finditer(fmt):
        if m.group(2).upper() not in ("NAME", "VERSION", "RELEASE", "ARCH", "EPOCH", "INSTALLTIME"):
            raise _RpmUsage(f'error: incorrect format: unknown tag: "{m.group(2)}"')
    stripped = _TAG_RE.sub("", fmt).replace("%%", "")
    if "%" in stripped:
        raise _RpmUsage("error: incorrect format: invalid field width or missing {")


def _render(fmt: str, name: str, pkg: dict) -> str:
    version, release = rpm_fields(pkg["version"])
    values = {
        "NAME": name,
        "VERSION": version,
        "RELEASE": release,
        "ARCH": pkg["arch"],
        "EPOCH": "(none)",
        "INSTALLTIME": str(int(pkg.get("installtime", 0))),
    }

    def sub(m):
        width = m.group(1)
        value = values[m.group(2).upper()]
        if width and width not in ("-", ""):
            n = int(width)
            value = value.ljust(-n) if n < 0 else value.rjust(n)
        return value

    pieces = fmt.split("%%")
    return "%".join(_unescape(_TAG_RE.sub(sub, piece)) for piece in pieces)


def _parse_rpm_args(argv):
    query = all_pkgs = False
    fmt = None
    args = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--queryformat", "--qf"):
            if i + 1 >= len(argv):
                raise _RpmUsage(f"rpm: option '{a}' requires an argument")
            fmt = argv[i + 1]
            i += 2
            continue
        if a.startswith("--queryformat=") or a.startswith("--qf="):
            fmt = a.split("=", 1)[1]
        elif a in ("--query",):
            query = True
        elif a in ("--all",):
            all_pkgs = True
        elif a.startswith("-") and not a.startswith("--") and len(a) > 1 and set(a[1:]) <= {"q", "a"}:
            query = query or "q" in a
            all_pkgs = all_pkgs or "a" in a
        elif a.startswith("-") and a != "-":
            raise _RpmUsage(f"rpm: unknown option: {a}")
        else:
            args.append(a)
        i += 1
    if not query:
        if all_pkgs:
            raise _RpmUsage("rpm: -a can only be used together with -q (query)")
        raise _RpmUsage("rpm: no operation specified (the simulated rpm supports only -q and -qa)")
    if not all_pkgs and not args:
        raise _RpmUsage("rpm: no arguments given for query")
    return all_pkgs, (fmt if fmt is not None else RPM_DEFAULT_FORMAT), args


def rpm_main(root, argv) -> int:
    started = time.time()
    argv = list(argv)
    try:
        all_pkgs, fmt, args = _parse_rpm_args(argv)
        _check_format(fmt)
    except _RpmUsage as exc:
        _err(str(exc))
        return 1
    node = _open_node(root, "rpm")
    if node is None:
        return 1
    with node.transaction() as tx:
        packages = dict(tx.st["packages"])
    out = []
    code = 0
    if all_pkgs:
        for name in sorted(packages):
            if not args or any(fnmatch.fnmatchcase(name, pat) for pat in args):
                out.append(_render(fmt, name, packages[name]))
    else:
        for arg in args:
            match = None
            for name, pkg in sorted(packages.items()):
                v, r = rpm_fields(pkg["version"])
                if arg in (name, f"{name}-{v}", f"{name}-{v}-{r}", f"{name}-{v}-{r}.{pkg['arch']}"):
                    match = (name, pkg)
                    break
            if match is None:
                out.append(f"package {arg} is not installed\n")
                code = 1
            else:
                out.append(_render(fmt, *match))
    sys.stdout.write("".join(out))
    sys.stdout.flush()
    node.log_command(_command("rpm", argv), code, started)
    return code
