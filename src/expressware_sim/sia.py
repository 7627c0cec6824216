"""The simulated Self-Installing Archive ``Dolphin_eXpressWare-<version>.sh``.

:func:`write_sia` writes a POSIX sh script shaped like a makeself archive: a
small header with an embedded SHA-256 checksum and size of the payload, an
``exec`` of the Python interpreter running :func:`sia_main`, and a base64
payload after the ``__ARCHIVE_BELOW__`` marker.  The installer verifies the
checksum before doing anything (``corrupt=True`` writes a damaged payload).

The SIA finds the node it runs on from its working directory: it walks up
from ``os.getcwd()`` to the first directory holding
``var/lib/expressware-sim/node.json``.
"""

from __future__ import annotations

import base64
import copy
import fcntl
import hashlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

from .node import NODE_FILE_REL, SIA_LOCK_REL, Node, package_dir
from .stack import (
    begin_reboot,
    install_packages,
    installed_version,
    packages_for,
    rebooting,
    running_version,
    start_services,
    status_line,
    stop_services,
)
from .versions import SimError, parse_version, rpm_fields, version_key

MARKER = b"__ARCHIVE_BELOW__"

# Exit statuses of the simulated SIA.
EXIT_OK = 0
EXIT_FAILED = 1  # build failure, services failed to start, corrupt archive, node rebooting/busy
EXIT_USAGE = 2  # unknown option, missing argument, no/conflicting action
EXIT_REFUSED_VERSION = 3  # same or older version without --enforce
EXIT_REFUSED_RPMS = 4  # --use-rpms problems (missing, wrong arch/kernel/version/product), not a frontend
EXIT_NO_NODE = 5  # no simulated node found above the working directory

USAGE = """\
Usage: sh Dolphin_eXpressWare-<version>.sh [--batch] --build-rpm
       sh Dolphin_eXpressWare-<version>.sh [--batch] --install-node [--use-rpms DIR] [--reboot] [--enforce]
       sh Dolphin_eXpressWare-<version>.sh [--batch] --install-frontend [--use-rpms DIR] [--reboot] [--enforce]"""


def sia_filename(version: str) -> str:
    return f"Dolphin_eXpressWare-{version}.sh"


def _payload(version: str) -> bytes:
    manifest = {
        "archive": "Dolphin eXpressWare self-installing archive (simulated)",
        "version": version,
        "node_packages": {p: [f"Dolphin-{p}", "Dolphin-SISCI", "Dolphin-SuperSockets"] for p in ("PX", "IX", "MX")},
        "frontend_packages": ["Dolphin-NetworkManager", "Dolphin-NetworkHosts"],
        "source": hashlib.sha256(f"DIS_RELEASE_{version}".encode()).hexdigest() * 8,
    }
    raw = base64.b64encode(json.dumps(manifest, sort_keys=True).encode())
    lines = [raw[i : i + 76] for i in range(0, len(raw), 76)]
    return b"\n".join(lines) + b"\n"


def write_sia(directory, version: str, corrupt: bool = False) -> Path:
    """Write ``<directory>/Dolphin_eXpressWare-<version>.sh`` and return its path."""
    parse_version(version)
    directory = Path(os.path.abspath(directory))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / sia_filename(version)
    payload = _payload(version)
    checksum = hashlib.sha256(payload).hexdigest()
    if corrupt:
        # damage the payload after the checksum was taken (a truncated/bit-flipped download)
        middle = len(payload) // 2
        payload = payload[:middle] + bytes([payload[middle] ^ 0x01]) + payload[middle + 1 : len(payload) - 40] + b"\n"
    python = os.path.abspath(sys.executable)
    code = (
        f"import sys; sys.path.insert(0, {str(package_dir())!r}); "
        "from expressware_sim.sia import sia_main; sys.exit(sia_main(sys.argv[1:]))"
    )
    header = f"""#!/bin/sh
# Dolphin eXpressWare {version} self-installing archive (SIA), simulated by expressware_sim.
# Run it as root in the work directory:  sh ./{sia_filename(version)} <options>
# This script is shaped like a makeself archive: the installer verifies the
# checksum below against the payload after the {MARKER.decode()} line first.
label="Dolphin eXpressWare {version}"
version={shlex.quote(version)}
SHA256="{checksum}"
filesizes="{len(_payload(version))}"
exec {shlex.quote(python)} -S -c {shlex.quote(code)} "$0" {shlex.quote(version)} "$@"
echo "$0: cannot run the installer interpreter {python}" >&2
exit 1
"""
    data = header.encode() + MARKER + b"\n" + payload
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return path


def verify_archive(sia_path, version: str) -> tuple[bool, str]:
    """Check the embedded checksum and size; ``(ok, detail)``."""
    try:
        data = Path(sia_path).read_bytes()
    except OSError as exc:
        return False, f"cannot read {sia_path}: {exc.strerror}"
    head, sep, payload = data.partition(b"\n" + MARKER + b"\n")
    if not sep:
        return False, "archive marker not found (truncated archive)"
    fields = {}
    for line in head.decode("utf-8", "replace").splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip().strip("\"'")
    expected = fields.get("SHA256", "")
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        return False, f"{actual} is different from {expected}"
    if fields.get("filesizes") != str(len(payload)):
        return False, f"payload size {len(payload)} is different from {fields.get('filesizes')}"
    try:
        manifest = json.loads(base64.b64decode(b"".join(payload.split())))
    except ValueError:
        return False, "payload cannot be unpacked"
    if manifest.get("version") != version:
        return False, f"payload version {manifest.get('version')} is different from {version}"
    return True, "All good."


class _Usage(Exception):
    pass


def _parse_options(opts):
    o = {"action": None, "use_rpms": None, "reboot": False, "enforce": False, "batch": False, "help": False}
    actions = {"--build-rpm": "build", "--install-node": "node", "--install-frontend": "frontend"}
    i = 0
    while i < len(opts):
        a = opts[i]
        if a in actions:
            if o["action"] not in (None, actions[a]):
                raise _Usage("ERROR: only one of --build-rpm, --install-node, --install-frontend may be given")
            o["action"] = actions[a]
        elif a == "--use-rpms":
            if i + 1 >= len(opts) or not opts[i + 1] or opts[i + 1].startswith("--"):
                raise _Usage("ERROR: option --use-rpms requires a directory argument")
            o["use_rpms"] = opts[i + 1]
            i += 1
        elif a.startswith("--use-rpms="):
            value = a.split("=", 1)[1]
            if not value:
                raise _Usage("ERROR: option --use-rpms requires a directory argument")
            o["use_rpms"] = value
        elif a == "--reboot":
            o["reboot"] = True
        elif a == "--enforce":
            o["enforce"] = True
        elif a == "--batch":
            o["batch"] = True
        elif a in ("--help", "-h"):
            o["help"] = True
        else:
            raise _Usage(f"ERROR: unknown option {a!r}")
        i += 1
    if o["help"]:
        return o
    if o["action"] is None:
        raise _Usage("ERROR: no action given (one of --build-rpm, --install-node, --install-frontend)")
    if o["action"] == "build" and (o["use_rpms"] or o["reboot"] or o["enforce"]):
        raise _Usage("ERROR: --use-rpms, --reboot and --enforce are only valid with --install-node/--install-frontend")
    return o


def _out(line: str = "") -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _rpm_name(name: str, version: str, arch: str) -> str:
    v, r = rpm_fields(version)
    return f"{name}-{v}-{r}.{arch}.rpm"


def _kernel_headers_error(st) -> None:
    kernel = st["kernel"]
    _err(f"ERROR: kernel header files for {kernel} not found (kernel-devel-{kernel})")
    _err("ERROR: building the binary RPM packages failed")


def take_time(node: Node, delay: str) -> None:
    """Sleep for the node's ``delay`` (build, install), counted from now and looked at again every 0.1 s: a delay
    changed while the command runs applies to it at once. A test holds an install that way (a delay of an hour) until
    what it tests has happened, then lets it end (0); a fixed delay only guessed how long that would take."""
    started = time.monotonic()
    while True:
        left = node.raw_state()["delays"][delay] - (time.monotonic() - started)
        if left <= 0:
            return
        time.sleep(min(left, 0.1))


def _build(node: Node, st: dict, version: str, cwd: Path) -> int:
    if st["faults"]["build-fails"]:
        _kernel_headers_error(st)
        return EXIT_FAILED
    _out(f"Building binary RPM packages of Dolphin eXpressWare {version} for {st['arch']}, kernel {st['kernel']} ...")
    take_time(node, "build")
    for target, sub in (("node", "node_RPMS"), ("frontend", "frontend_RPMS")):
        d = cwd / sub
        d.mkdir(parents=True, exist_ok=True)
        for stale in d.glob("*.rpm"):
            stale.unlink()
        for name in packages_for(target, st["product"]):
            meta = {
                "name": name,
                "version": version,
                "arch": st["arch"],
                "kernel": st["kernel"],
                "product": st["product"],
                "role": target,
                "built_on": st["name"],
            }
            path = d / _rpm_name(name, version, st["arch"])
            path.write_text(json.dumps(meta, sort_keys=True) + "\n", encoding="utf-8")
            _out(f"  wrote {sub}/{path.name}")
    _out(f"The binary RPM packages are in {cwd}/node_RPMS and {cwd}/frontend_RPMS.")
    return EXIT_OK


def _load_rpms(base: str, target: str, st: dict, version: str, cwd: Path) -> bool:
    sub = "node_RPMS" if target == "node" else "frontend_RPMS"
    base_dir = Path(base) if os.path.isabs(base) else cwd / base
    rpm_dir = base_dir / sub
    if not base_dir.is_dir():
        _err(f"ERROR: --use-rpms: directory {base} does not exist")
        return False
    if not rpm_dir.is_dir():
        _err(f"ERROR: --use-rpms: no {sub}/ directory in {base_dir}")
        return False
    files = sorted(rpm_dir.glob("*.rpm"))
    if not files:
        _err(f"ERROR: --use-rpms: no RPM packages in {rpm_dir}")
        return False
    found = {}
    problems = []
    for f in files:
        try:
            meta = json.loads(f.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or not all(k in meta for k in ("name", "version", "arch", "kernel")):
                raise ValueError
        except (OSError, ValueError):
            problems.append(f"{f.name} is not a valid RPM package")
            continue
        if meta["arch"] != st["arch"]:
            problems.append(f"{f.name} was built for architecture {meta['arch']}, this Cluster Node is {st['arch']}")
        if meta["kernel"] != st["kernel"]:
            problems.append(f"{f.name} was built for kernel {meta['kernel']}, this Cluster Node runs {st['kernel']}")
        if meta["version"] != version:
            problems.append(f"{f.name} is version {meta['version']}, this SIA installs {version}")
        if meta.get("product", st["product"]) != st["product"]:
            problems.append(f"{f.name} is for product {meta.get('product')}, this Cluster Node has {st['product']}")
        found[meta["name"]] = meta
    if problems:
        for p in problems:
            _err(f"ERROR: refusing RPM: {p}")
        return False
    missing = [n for n in packages_for(target, st["product"]) if n not in found]
    if missing:
        _err(
            f"ERROR: --use-rpms: no RPMs for this Cluster Node ({st['product']}) in {rpm_dir}: "
            f"missing {', '.join(missing)}"
        )
        return False
    _out(f"Using the binary RPM packages in {rpm_dir}:")
    for name in packages_for(target, st["product"]):
        _out(f"  {_rpm_name(name, version, st['arch'])}")
    return True


def _install(node: Node, st: dict, version: str, o: dict, cwd: Path) -> int:
    target = o["action"]
    if target == "frontend" and st["role"] != "frontend":
        _err(f"ERROR: {st['name']} is not the Cluster Management Node (frontend); use --install-node on Cluster Nodes")
        return EXIT_REFUSED_RPMS
    current = installed_version(st, target)
    if current is not None and not o["enforce"] and version_key(version) <= version_key(current):
        what = "same" if version_key(version) == version_key(current) else "older"
        _err(
            f"ERROR: Dolphin eXpressWare {current} is installed on {st['name']}; refusing to install the "
            f"{what} version {version} (use --enforce to install it anyway)"
        )
        return EXIT_REFUSED_VERSION
    if o["use_rpms"]:
        if not _load_rpms(o["use_rpms"], target, st, version, cwd):
            return EXIT_REFUSED_RPMS
    else:
        if st["faults"]["build-fails"]:
            _kernel_headers_error(st)
            return EXIT_FAILED
        _out(f"Building the {target} packages of Dolphin eXpressWare {version} for kernel {st['kernel']} ...")
        take_time(node, "build")

    stopped_ok = True
    old_version = None
    if target == "node":
        _out("Stopping the Dolphin services:")
        with node.transaction() as tx:
            old_version = running_version(tx.st)
            results = stop_services(tx)
            tx.event("sia-stop", ok=all(ok for _, ok in results), failed=[label for label, ok in results if not ok])
        for label, ok in results:
            _out(status_line("Stopping", label, ok))
        stopped_ok = all(ok for _, ok in results)

    names = ", ".join(packages_for(target, st["product"]))
    _out(f"Installing {names} {version} ...")
    take_time(node, "install")

    start_results = []
    restore_results = []
    with node.transaction() as tx:
        install_packages(tx, target, version)
        if target == "node" and not rebooting(tx.st):
            if stopped_ok:
                start_results = start_services(tx)
            elif not o["reboot"]:
                # The old drivers keep running; bring back what did stop, on the old version.
                restore_results = start_services(tx, version=old_version)
        if o["reboot"]:
            begin_reboot(tx, reason="sia --reboot")
        reboot_until = tx.st.get("reboot_until")

    code = EXIT_OK
    if start_results:
        _out("Starting the Dolphin services:")
        for label, ok in start_results:
            _out(status_line("Starting", label, ok))
        failed = [label for label, ok in start_results if not ok]
        if failed:
            if o["reboot"]:
                _out(f"Some Dolphin services failed to start ({', '.join(failed)}); the reboot will fix this.")
            else:
                _err(
                    f"ERROR: Dolphin services failed to start ({', '.join(failed)}); the memory may be too "
                    "fragmented for the low-level driver: a reboot of the Cluster Node will fix the problem."
                )
                code = EXIT_FAILED
    if target == "node" and not stopped_ok:
        if o["reboot"]:
            _out("The Dolphin services could not be stopped; the new drivers will be loaded by the reboot.")
        else:
            if restore_results:
                _out(f"Restarting the stopped Dolphin services on the running version {old_version}:")
            for label, ok in restore_results:
                _out(status_line("Starting", label, ok))
            _err(
                f"WARNING: the Dolphin services could not be stopped (still in use). The files of "
                f"{version} are installed, but the running drivers stay at {old_version}: the new drivers "
                "will be loaded after a reboot of the Cluster Node."
            )
            if not all(ok for _, ok in restore_results):
                _err("ERROR: the services that were stopped could not be restarted.")
                code = EXIT_FAILED
    if o["reboot"]:
        _out(
            f"Installation of Dolphin eXpressWare {version} finished; rebooting Cluster Node {st['name']} now "
            f"(back at {time.strftime('%H:%M:%S', time.localtime(reboot_until))})."
        )
    elif code == EXIT_OK:
        _out(f"Installation of Dolphin eXpressWare {version} on {st['name']} finished.")
    return code


def sia_main(argv) -> int:
    """Entry point: ``argv = [path_of_the_sia, embedded_version, *options]``."""
    started = time.time()
    argv = list(argv)
    if len(argv) < 2:
        _err("sia: internal usage: sia_main(SIA_PATH, VERSION, OPTIONS...)")
        return EXIT_USAGE
    sia_path, version, opts = argv[0], argv[1], argv[2:]
    command = " ".join(["sia", *(shlex.quote(a) for a in opts)])
    try:
        cwd = Path(os.getcwd())
    except OSError:
        cwd = None
    node = None
    if cwd is not None:
        from .node import find_node_root

        root = find_node_root(cwd)
        if root is not None:
            try:
                node = Node(root)
            except SimError:
                node = None

    def finish(code: int) -> int:
        if node is not None:
            outcome = (
                "ok" if code == 0 else ("refused" if code in (EXIT_REFUSED_VERSION, EXIT_REFUSED_RPMS) else "failed")
            )
            try:
                node.log_command(command, code, started, outcome=outcome, sia_version=version, cwd=str(cwd))
            except (OSError, SimError):
                pass
        return code

    ok, detail = verify_archive(sia_path, version)
    if not ok:
        _err(f"Verifying archive integrity... Error in checksums: {detail}")
        _err(f"The archive {sia_path} is corrupt; please download it again.")
        return finish(EXIT_FAILED)
    _out("Verifying archive integrity... All good.")
    try:
        o = _parse_options(opts)
    except _Usage as exc:
        _err(str(exc))
        _err(USAGE)
        return finish(EXIT_USAGE)
    if o["help"]:
        _out(USAGE)
        return finish(EXIT_OK)
    if node is None:
        where = str(cwd) if cwd is not None else "(the current directory no longer exists)"
        _err(
            f"ERROR: the working directory {where} is not on a simulated Cluster Node: no {NODE_FILE_REL} "
            "in it or any parent directory"
        )
        return EXIT_NO_NODE

    _out(f"Dolphin eXpressWare {version} Software Installation Archive (simulated)")
    st = node.raw_state()
    _out(f"Cluster Node {st['name']}: {st['product']}, {st['arch']}, kernel {st['kernel']}, role {st['role']}")
    if rebooting(st):
        _err(f"ERROR: {st['name']} is rebooting; run the SIA again when it is back")
        return finish(EXIT_FAILED)
    if o["action"] == "build":
        return finish(_build(node, st, version, cwd))

    lock_fd = os.open(node.root / SIA_LOCK_REL, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _err(f"ERROR: another installation is already running on {st['name']}")
            return finish(EXIT_FAILED)
        st = node.raw_state()
        return finish(_install(node, copy.deepcopy(st), version, o, cwd))
    finally:
        os.close(lock_fd)
