"""Knowledge of the Dolphin eXpressWare vendor tools: versions, output formats, release-notes rules.

Pure Python, no Salt dunders, no I/O: every loader module of this extension (execution
modules, state, beacon, runner) loads this one file through its ``_shared()`` helper, so
the formats of ``dis_services``, ``dis_diag`` and ``rpm`` are parsed in exactly one place.
The interface is the one fixed in ``expressware-facts.md`` section 10.

This module is the front end, split by concern: the version grammar is ``expressware_vendor_versions``'s, the
parsers of the tools' output are ``expressware_vendor_output``'s (both loaded with ``_sibling()``, their names
re-exported here); the rules that decide on what they read (frontend and node updates, release-notes
compatibility) are here.

Parsers raise :class:`VendorOutputError` (a ``ValueError``) on output they cannot
understand; callers turn that into ``CommandExecutionError``.
"""

import fnmatch
import importlib.util
import os
import re
import sys


def _sibling(name):
    """Another module of this directory: the same module object the loader modules' ``_shared()`` gives."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


_versions = _sibling("expressware_vendor_versions")
_output = _sibling("expressware_vendor_output")

# ---------------------------------------------------------------------------
# Versions (expressware_vendor_versions)
# ---------------------------------------------------------------------------

VERSION_RE = _versions.VERSION_RE
VERSION_FORMAT = _versions.VERSION_FORMAT
is_version = _versions.is_version
check_version = _versions.check_version
version_key = _versions.version_key
compare_versions = _versions.compare_versions
major = _versions.major
rpm_to_version = _versions.rpm_to_version
printed_version = _versions.printed_version
release_tag_version = _versions.release_tag_version
parse_rpm_filename = _versions.parse_rpm_filename
SIA_NAME_RE = _versions.SIA_NAME_RE
sia_version = _versions.sia_version

# ---------------------------------------------------------------------------
# The tools' output (expressware_vendor_output)
# ---------------------------------------------------------------------------

VendorOutputError = _output.VendorOutputError
SERVICES = _output.SERVICES
PRODUCTS = _output.PRODUCTS
LEGACY_PRODUCTS = _output.LEGACY_PRODUCTS
OPTIONAL_SERVICES = _output.OPTIONAL_SERVICES
parse_status_line = _output.parse_status_line
parse_action_output = _output.parse_action_output
parse_status = _output.parse_status
running_version = _output.running_version
parse_diag = _output.parse_diag
RPM_QUERYFORMAT = _output.RPM_QUERYFORMAT
RPM_PATTERN = _output.RPM_PATTERN
parse_rpm_packages = _output.parse_rpm_packages


# ---------------------------------------------------------------------------
# Installed packages: the node's version, the frontend's, what --install-frontend does
# ---------------------------------------------------------------------------

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
        return {
            "action": "refuse",
            "reason": "not a Cluster Management Node: no " + " or ".join(FRONTEND_PACKAGES) + " package is installed",
        }
    order = compare_versions(installed, target)
    if order == 0:
        if enforce:
            return {"action": "install", "reason": f"reinstall of {target} (enforce)"}
        return {"action": "none", "reason": f"the frontend packages are on {target}"}
    if order > 0 and not enforce:
        return {"action": "refuse", "reason": f"downgrade of the frontend {installed} -> {target} needs enforce=True"}
    return {"action": "install", "reason": f"frontend {installed} -> {target}"}


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
        raise ValueError(
            f"compat must be a mapping with keys 'rolling' and 'incompatible', not {type(compat).__name__}"
        )
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
        return {
            "action": "refuse",
            "reason": "eXpressWare is not installed on this node: a rolling update needs an installed stack",
        }
    check_version(installed, "installed version")
    cmp = compare_versions(target, installed)
    if cmp == 0:
        if running in (None, target):
            if running is None:
                return {"action": "activate", "reason": f"{target} is installed but its services are not running"}
            return {"action": "none", "reason": f"{target} is installed and running"}
        return {
            "action": "activate",
            "reason": f"{target} is installed but {running} still runs (installed under load)",
        }
    if cmp < 0 and not enforce:
        return {
            "action": "refuse",
            "reason": f"{target} is older than the installed {installed}: a downgrade needs enforce=True",
        }
    allowed, rule = rolling_compatible(installed, target, compat)
    if not allowed:
        return {"action": "refuse", "reason": rule}
    return {"action": "install", "reason": f"{installed} -> {target}: {rule}"}
