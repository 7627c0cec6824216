"""eXpressWare version strings: syntax, ordering and the mapping to RPM fields.

A version is ``MAJOR.MINOR.PATCH`` with an optional suffix that starts with a
letter (``5.25.2``, ``5.26.0-d`` for a development snapshot).  A suffixed
(snapshot) version sorts *before* the same triple without suffix.

RPM mapping: GA ``X.Y.Z`` -> VERSION ``X.Y.Z``, RELEASE ``1``;
snapshot ``X.Y.Z-s`` -> VERSION ``X.Y.Z``, RELEASE ``s``.
"""

from __future__ import annotations

import re

VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([A-Za-z][A-Za-z0-9]*))?$")


class SimError(ValueError):
    """Bad input to the simulator (bad version, unknown fault, not a node, ...)."""


def parse_version(version: str) -> tuple[int, int, int, str | None]:
    """Split a version string into ``(major, minor, patch, suffix_or_None)``.

    Raises :class:`SimError` for anything that is not valid version syntax.
    """
    if not isinstance(version, str):
        raise SimError(f"invalid eXpressWare version {version!r}: not a string")
    match = VERSION_RE.match(version)
    if not match:
        raise SimError(
            f"invalid eXpressWare version {version!r} "
            "(expected MAJOR.MINOR.PATCH with an optional -suffix, e.g. 5.25.2 or 5.26.0-d)"
        )
    major, minor, patch, suffix = match.groups()
    return int(major), int(minor), int(patch), suffix


def is_valid_version(version: str) -> bool:
    return isinstance(version, str) and VERSION_RE.match(version) is not None


def version_key(version: str) -> tuple:
    """Sort key: numeric triple; a snapshot sorts before the GA of the same triple."""
    major, minor, patch, suffix = parse_version(version)
    if suffix is None:
        return (major, minor, patch, 1, "")
    return (major, minor, patch, 0, suffix)


def compare_versions(a: str, b: str) -> int:
    """Return -1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``."""
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


def rpm_fields(version: str) -> tuple[str, str]:
    """``(VERSION, RELEASE)`` of the RPMs of an eXpressWare version."""
    major, minor, patch, suffix = parse_version(version)
    return f"{major}.{minor}.{patch}", (suffix if suffix is not None else "1")


def version_from_rpm(rpm_version: str, rpm_release: str) -> str:
    """Inverse of :func:`rpm_fields`."""
    if rpm_release == "1":
        return rpm_version
    return f"{rpm_version}-{rpm_release}"
