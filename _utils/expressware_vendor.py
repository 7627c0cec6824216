"""Knowledge of the Dolphin eXpressWare vendor tools: versions, output formats, release-notes rules.

Pure Python, no Salt dunders, no I/O: every loader module of this extension (execution
modules, state, beacon, runner) loads this one file through its ``_shared()`` helper, so
the formats of ``dis_services``, ``dis_diag`` and ``rpm`` are parsed in exactly one place.
The interface is the one fixed in ``expressware-facts.md`` section 10.

Parsers raise :class:`VendorOutputError` (a ``ValueError``) on output they cannot
understand; callers turn that into ``CommandExecutionError``.
"""

import fnmatch
import re

# ---------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------

#: ``MAJOR.MINOR.PATCH`` with an optional suffix (``5.26.0-d`` is a development snapshot).
#: ASCII digits without leading zeros: ``\d`` also matched other scripts' digits
#: (``５.２６.０``), and ``05.26.0`` was a second spelling of ``5.26.0`` (the same
#: ``version_key``, other text), so ``running == target`` checks failed after a
#: successful update.
_NUMBER = r"(0|[1-9][0-9]{0,5})"
VERSION_RE = re.compile(rf"^{_NUMBER}\.{_NUMBER}\.{_NUMBER}(?:-([A-Za-z][A-Za-z0-9]{{0,15}}))?\Z")
VERSION_FORMAT = "MAJOR.MINOR.PATCH with an optional suffix, e.g. 5.25.2 or 5.26.0-d"


class VendorOutputError(ValueError):
    """Output of a vendor tool that does not have the documented shape."""


def is_version(text):
    """True when ``text`` is an eXpressWare version string."""
    return isinstance(text, str) and VERSION_RE.match(text) is not None


def check_version(text, what="version"):
    """Return ``text`` if it is a version, else raise ``ValueError`` naming it."""
    if not is_version(text):
        raise ValueError(f"{what} {text!r} is not an eXpressWare version ({VERSION_FORMAT})")
    return text


def version_key(text):
    """Sort key: numeric triple; a suffixed snapshot sorts before its release."""
    match = VERSION_RE.match(check_version(text))
    major, minor, patch, suffix = match.groups()
    return (int(major), int(minor), int(patch), 0 if suffix else 1, suffix or "")


def compare_versions(left, right):
    """-1, 0 or 1 as ``left`` is older than, equal to or newer than ``right``."""
    a, b = version_key(left), version_key(right)
    return (a > b) - (a < b)


def major(version):
    return version_key(version)[0]


def rpm_to_version(version, release):
    """The eXpressWare version of an RPM ``VERSION``/``RELEASE`` pair.

    GA packages carry a numeric release (``5.25.2-1``); snapshot packages carry the
    snapshot letter as release (``5.26.0-d``).
    """
    if re.match(r"^[A-Za-z][A-Za-z0-9]*$", release or ""):
        return f"{version}-{release}"
    return version


# ---------------------------------------------------------------------------
# dis_services
# ---------------------------------------------------------------------------

#: Services in start order: (key, label in start/stop lines, label in status lines).
#: ``{product}`` is PX, IX or MX.
SERVICES = (
    ("kosif", "KOSIF driver", "KOSIF"),
    ("adapter", "{product} driver", "{product}"),
    ("irm", "IRM driver", "IRM"),
    ("nodemgr", "Node Manager", "Node Manager"),
    ("sisci", "SISCI driver", "SISCI"),
    ("supersockets", "SuperSockets drivers", "SuperSockets"),
)
PRODUCTS = ("PX", "IX", "MX")

_ACTION_RE = re.compile(r"^(Starting|Stopping) Dolphin (?P<label>.+?)\s+\[(?P<mark>  OK  |FAILED)\]$")
_RUNNING_RE = re.compile(r"^Dolphin (?P<label>.+?) (?P<version>\d+\.\d+\.\d+(?:-[A-Za-z][A-Za-z0-9]*)?) is running\.$")
_NODEMGR_RE = re.compile(r"^Dolphin Node Manager is running \(pid (?P<pid>\d+)\)\.$")
_STOPPED_RE = re.compile(r"^Dolphin (?P<label>.+?) is stopped\.$")


def _service_key(label):
    """Map a label from either output format to the service key."""
    for key, action_label, status_label in SERVICES:
        for candidate in (action_label, status_label):
            if "{product}" in candidate:
                for product in PRODUCTS:
                    if candidate.format(product=product) == label:
                        return key
            elif candidate == label:
                return key
    raise VendorOutputError(f"unknown Dolphin service {label!r}")


def _lines(text):
    return [line.rstrip() for line in (text or "").splitlines() if line.strip()]


def parse_action_output(text):
    """Parse ``dis_services start|stop`` output into an ordered list.

    Each item is ``{"service": key, "label": label, "action": "start"|"stop", "ok": bool}``.
    """
    result = []
    for line in _lines(text):
        match = _ACTION_RE.match(line)
        if not match:
            raise VendorOutputError(f"unexpected dis_services line: {line!r}")
        result.append(
            {
                "service": _service_key(match.group("label")),
                "label": match.group("label"),
                "action": "start" if match.group(1) == "Starting" else "stop",
                "ok": match.group("mark") == "  OK  ",
            }
        )
    if not result:
        raise VendorOutputError("dis_services printed nothing")
    return result


def parse_status(text):
    """Parse ``dis_services status`` output.

    Returns ``{key: {"label", "running", "version", "pid"}}`` in start order.
    Every one of the six services must be reported exactly once.
    """
    services = {}
    for line in _lines(text):
        match = _NODEMGR_RE.match(line)
        if match:
            entry = {"label": "Node Manager", "running": True, "version": None, "pid": int(match.group("pid"))}
        elif _RUNNING_RE.match(line):
            match = _RUNNING_RE.match(line)
            entry = {"label": match.group("label"), "running": True, "version": match.group("version"), "pid": None}
        elif _STOPPED_RE.match(line):
            match = _STOPPED_RE.match(line)
            entry = {"label": match.group("label"), "running": False, "version": None, "pid": None}
        else:
            raise VendorOutputError(f"unexpected dis_services status line: {line!r}")
        key = _service_key(entry["label"])
        if key in services:
            raise VendorOutputError(f"dis_services status reported {entry['label']} twice")
        services[key] = entry
    missing = [key for key, _, _ in SERVICES if key not in services]
    if missing:
        raise VendorOutputError(f"dis_services status did not report: {', '.join(missing)}")
    return {key: services[key] for key, _, _ in SERVICES}


def running_version(services):
    """The version the running drivers report, None when none runs.

    Raises :class:`VendorOutputError` when running services report different versions.
    """
    versions = {entry["version"] for entry in services.values() if entry["running"] and entry["version"]}
    if len(versions) > 1:
        raise VendorOutputError(f"running services report different versions: {', '.join(sorted(versions))}")
    return versions.pop() if versions else None


# ---------------------------------------------------------------------------
# dis_diag
# ---------------------------------------------------------------------------

_RESULT_RE = re.compile(r"^TEST RESULT:\s*(PASSED|FAILED)\s*$")


def parse_diag(text):
    """Parse ``dis_diag -V 0``: ``{"passed": bool, "lines": [...]}``; the verdict is the last line."""
    lines = _lines(text)
    if not lines or not _RESULT_RE.match(lines[-1].strip()):
        raise VendorOutputError("dis_diag output does not end with 'TEST RESULT: PASSED|FAILED'")
    return {"passed": _RESULT_RE.match(lines[-1].strip()).group(1) == "PASSED", "lines": lines}


# ---------------------------------------------------------------------------
# rpm
# ---------------------------------------------------------------------------

#: The query the execution module runs: ``rpm -qa --queryformat RPM_QUERYFORMAT 'Dolphin-*'``.
RPM_QUERYFORMAT = "%{NAME} %{VERSION}-%{RELEASE}\\n"
RPM_PATTERN = "Dolphin-*"
_RPM_LINE_RE = re.compile(r"^(?P<name>Dolphin-[A-Za-z0-9_.+-]+) (?P<version>[0-9][0-9A-Za-z.]*)-(?P<release>[0-9A-Za-z._]+)$")


def parse_rpm_packages(text):
    """Parse ``NAME VERSION-RELEASE`` lines into ``{name: eXpressWare version}``."""
    packages = {}
    for line in _lines(text):
        match = _RPM_LINE_RE.match(line.strip())
        if not match:
            raise VendorOutputError(f"unexpected rpm output line: {line!r}")
        version = rpm_to_version(match.group("version"), match.group("release"))
        if not is_version(version):
            raise VendorOutputError(f"package {match.group('name')} has version {version!r}, not an eXpressWare version")
        packages[match.group("name")] = version
    return packages


#: The packages of the Cluster Management Node (frontend): ``--install-frontend`` updates
#: them, ``--install-node`` leaves them alone (a frontend may also be a Cluster Node).
FRONTEND_PACKAGES = ("Dolphin-NetworkManager", "Dolphin-NetworkHosts")


def _one_version(packages, what):
    versions = set(packages.values())
    if len(versions) > 1:
        detail = ", ".join(f"{name} {version}" for name, version in sorted(packages.items()))
        raise VendorOutputError(f"installed {what} have different versions: {detail}")
    return versions.pop() if versions else None


def installed_version(packages):
    """One version for the installed node stack (every ``Dolphin-*`` package but the
    frontend's), None when nothing is installed.

    Raises :class:`VendorOutputError` when the packages disagree (a half-finished
    installation is not a version).
    """
    node = {name: version for name, version in packages.items() if name not in FRONTEND_PACKAGES}
    return _one_version(node, "Dolphin packages")


def frontend_version(packages):
    """The version of the frontend packages (:data:`FRONTEND_PACKAGES`), None when this
    is not a Cluster Management Node; :class:`VendorOutputError` when they disagree."""
    frontend = {name: version for name, version in packages.items() if name in FRONTEND_PACKAGES}
    return _one_version(frontend, "frontend packages")


def frontend_decision(installed, target, enforce=False):
    """What ``--install-frontend`` would do on a node whose frontend packages are
    ``installed``: ``{"action": "none"|"install"|"refuse", "reason"}``."""
    if installed is None:
        return {"action": "refuse", "reason": "not a Cluster Management Node: no "
                + " or ".join(FRONTEND_PACKAGES) + " package is installed"}
    order = compare_versions(installed, target)
    if order == 0:
        if enforce:
            return {"action": "install", "reason": f"reinstall of {target} (enforce)"}
        return {"action": "none", "reason": f"the frontend packages are on {target}"}
    if order > 0 and not enforce:
        return {"action": "refuse", "reason": f"downgrade of the frontend {installed} -> {target} needs enforce=True"}
    return {"action": "install", "reason": f"frontend {installed} -> {target}"}


_RPM_FILE_RE = re.compile(
    r"^(?P<name>Dolphin-[A-Za-z0-9_+]+(?:-[A-Za-z][A-Za-z0-9_+]*)*)-(?P<version>\d+\.\d+\.\d+)"
    r"-(?P<release>[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\.(?P<arch>[A-Za-z0-9_]+)\.rpm\Z"
)


def parse_rpm_filename(filename):
    """``Dolphin-PX-5.26.0-1.x86_64.rpm`` -> ``{"name", "version", "arch"}``; None if not such a name."""
    match = _RPM_FILE_RE.match(filename or "")
    if not match:
        return None
    return {
        "name": match.group("name"),
        "version": rpm_to_version(match.group("version"), match.group("release")),
        "arch": match.group("arch"),
    }


# ---------------------------------------------------------------------------
# The installer (SIA)
# ---------------------------------------------------------------------------

#: The optional part before the version holds only what the ``sia`` module accepts in
#: an installer's name (``Dolphin_eXpressWare-Linux-x86_64-PX-5.26.0.sh``); it was
#: ``.*``, so ``Dolphin_eXpressWare-$(reboot)-5.26.0.sh`` had a version.
SIA_NAME_RE = re.compile(r"^Dolphin_eXpressWare-(?:[A-Za-z0-9._+-]*-)?(?P<version>[0-9]+\.[0-9]+\.[0-9]+(?:-[A-Za-z][A-Za-z0-9]*)?)\.sh\Z")


def sia_version(filename):
    """The version in an SIA file name (``Dolphin_eXpressWare-5.26.0.sh``), None if it has none."""
    match = SIA_NAME_RE.match(filename or "") if isinstance(filename, str) else None
    # Only a valid version: compare_versions raised ValueError (not a refusal) on
    # e.g. Dolphin_eXpressWare-1234567.0.0.sh in sia.install_node.
    return match.group("version") if match and is_version(match.group("version")) else None


# ---------------------------------------------------------------------------
# Release notes: may a node on version A be rolled to version B?
# ---------------------------------------------------------------------------

_CONSTRAINT_RE = re.compile(r"^(>=|<=|==|!=|>|<)\s*(\S+)$")


def version_matches(version, spec):
    """Does ``version`` match ``spec``?

    ``spec`` is an exact version, a glob (``5.25.*``) or comma-separated constraints
    (``>=5.24.0,<5.26.0``).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"version specification {spec!r} is empty or not a string")
    for part in (p.strip() for p in spec.split(",")):
        match = _CONSTRAINT_RE.match(part)
        if match:
            op, bound = match.groups()
            cmp = compare_versions(version, check_version(bound, "bound in " + repr(spec)))
            ok = {">=": cmp >= 0, "<=": cmp <= 0, "==": cmp == 0, "!=": cmp != 0, ">": cmp > 0, "<": cmp < 0}[op]
        elif any(ch in part for ch in "*?["):
            ok = fnmatch.fnmatchcase(version, part)
        else:
            ok = compare_versions(version, check_version(part, "version in specification")) == 0
        if not ok:
            return False
    return True


def validate_compat(compat):
    """Check the shape of rolling-compatibility data; return it normalised.

    Shape (from the release notes; pillar ``expressware:compat`` or an argument)::

        rolling:                 # pairs declared rolling-compatible
          - {from: "5.25.*", to: "5.26.0"}
        incompatible:            # need a complete update (protocol incompatibility)
          - "6.0.0"              # any update *to* this version
          - {from: "<5.20.0", to: ">=5.26.0"}
    """
    if compat in (None, "", {}):
        return {"rolling": [], "incompatible": []}
    if not isinstance(compat, dict):
        raise ValueError(f"compat must be a mapping with keys 'rolling' and 'incompatible', not {type(compat).__name__}")
    unknown = set(compat) - {"rolling", "incompatible"}
    if unknown:
        raise ValueError(f"compat has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    result = {}
    for key in ("rolling", "incompatible"):
        entries = compat.get(key) or []
        if not isinstance(entries, list):
            raise ValueError(f"compat:{key} must be a list")
        normalised = []
        for entry in entries:
            if isinstance(entry, str) and key == "incompatible":
                entry = {"from": "*", "to": entry}
            if not isinstance(entry, dict) or set(entry) != {"from", "to"}:
                raise ValueError(f"compat:{key} entry {entry!r} must be a mapping with 'from' and 'to'")
            for side in ("from", "to"):
                version_matches("0.0.0", entry[side])  # raises on a malformed spec
            normalised.append({"from": entry["from"], "to": entry["to"]})
        result[key] = normalised
    return result


def rolling_compatible(current, target, compat=None):
    """Decide whether ``current`` may be rolled to ``target``: ``(allowed, rule)``.

    A declared incompatibility always refuses; a declared pair allows; otherwise the
    default rule allows updates within one MAJOR version only.
    """
    compat = validate_compat(compat)
    for entry in compat["incompatible"]:
        if version_matches(current, entry["from"]) and version_matches(target, entry["to"]):
            return False, (
                f"the release notes declare {current} -> {target} incompatible "
                f"(compat:incompatible from {entry['from']!r} to {entry['to']!r}): a complete update is needed"
            )
    for entry in compat["rolling"]:
        if version_matches(current, entry["from"]) and version_matches(target, entry["to"]):
            return True, f"the release notes declare {current} -> {target} rolling-compatible"
    if major(current) == major(target):
        return True, f"default rule: {current} -> {target} stays within major version {major(target)}"
    return False, (
        f"default rule: a rolling update from {current} to {target} crosses major versions "
        f"({major(current)} -> {major(target)}) and no release-notes entry (compat:rolling) declares it "
        "compatible: a complete update is needed"
    )


def update_decision(installed, running, target, enforce=False, compat=None):
    """What one node needs to reach ``target``; the rule shared by the state and the runner.

    Returns ``{"action": ..., "reason": ...}`` where action is

    - ``none``: installed and running are the target;
    - ``activate``: the target is installed but the old drivers still run (installed
      under load); restarting the services or a reboot finishes the update;
    - ``install``: run the installer;
    - ``refuse``: not allowed (downgrade or reinstall without ``enforce``, or the
      release-notes rule); ``reason`` names the rule.
    """
    check_version(target, "target version")
    if installed is None:
        return {"action": "refuse", "reason": "eXpressWare is not installed on this node: a rolling update needs an installed stack"}
    check_version(installed, "installed version")
    cmp = compare_versions(target, installed)
    if cmp == 0:
        if running in (None, target):
            if running is None:
                return {"action": "activate", "reason": f"{target} is installed but its services are not running"}
            return {"action": "none", "reason": f"{target} is installed and running"}
        return {"action": "activate", "reason": f"{target} is installed but {running} still runs (installed under load)"}
    if cmp < 0 and not enforce:
        return {
            "action": "refuse",
            "reason": f"{target} is older than the installed {installed}: a downgrade needs enforce=True",
        }
    allowed, rule = rolling_compatible(installed, target, compat)
    if not allowed:
        return {"action": "refuse", "reason": rule}
    return {"action": "install", "reason": f"{installed} -> {target}: {rule}"}
