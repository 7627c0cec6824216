"""eXpressWare versions: their grammar and order, and how the vendor tools, packages and installers spell them.

Part of :mod:`expressware_vendor`, the front end the loader modules load (it re-exports every public name of this
module). Pure Python, no Salt dunders, no I/O.
"""

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


#: Distribution tags in an RPM ``RELEASE`` (``1.el9``, ``d.el9_3``): packaging notes, not part of the version.
_DIST_TAG_RE = re.compile(
    r"^(?:el|fc|rhel|centos|ol|sles|sle|suse|lp|mga|amzn|an|rocky|alma|ubuntu|deb|debian|mdv|rh)[0-9][A-Za-z0-9_]*\Z",
    re.IGNORECASE,
)
_SUFFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,15}\Z")
_TRIPLE = rf"{_NUMBER}\.{_NUMBER}\.{_NUMBER}"
#: An RPM ``VERSION`` field: rpm forbids ``-`` there, so a snapshot letter may stand right after
#: the triple or after ``~`` (rpm's pre-release mark) or ``_``: ``5.26.0``, ``5.26.0d``, ``5.26.0~d``.
_RPM_VERSION_RE = re.compile(rf"^{_TRIPLE}(?:[~_]?([A-Za-z][A-Za-z0-9]{{0,15}}))?\Z")


def _release_suffix(release):
    """The snapshot suffix an RPM ``RELEASE`` carries: ``''`` for a GA release, None if unreadable.

    Numbers (the package build count) and distribution tags are packaging, not version:
    ``1``, ``1.el9``, ``3.el9_2`` are GA; ``d``, ``d.el9``, ``0.d`` carry the suffix ``d``.
    Two suffix-like parts (``d.rc1``) cannot be read as one version.
    """
    suffix = ""
    for token in (release or "").split("."):
        if re.fullmatch(r"[0-9]+", token) or _DIST_TAG_RE.match(token):
            continue
        if suffix or not _SUFFIX_RE.match(token):
            return None
        suffix = token
    return suffix


def rpm_to_version(version, release):
    """The eXpressWare version of an RPM ``VERSION``/``RELEASE`` pair, None if they are not one.

    GA packages carry a numeric release (``5.25.2-1``, ``5.25.2-1.el9``); snapshot packages
    carry the snapshot letter as release (``5.26.0-d``, ``5.26.0-d.el9``) or in the VERSION
    field (``5.26.0d``, ``5.26.0~d`` with release ``1``).
    """
    match = _RPM_VERSION_RE.match(version or "")
    suffix = _release_suffix(release)
    if not match or suffix is None:
        return None
    in_version = match.group(4) or ""
    if in_version and suffix and in_version != suffix:
        return None
    triple = ".".join(match.group(i) for i in (1, 2, 3))
    suffix = in_version or suffix
    return f"{triple}-{suffix}" if suffix else triple


#: A version as the tools print it after a name: ``5.25.2``, ``5.26.0-d``, ``v5.25.2``, ``5.26.0d``,
#: ``5.25.2-1`` (a package release: GA), ``5.26.0-d.el9``. A fourth number (``5.25.2.1``) is not
#: a version, so it is not cut to ``5.25.2``.
_PRINTED_VERSION_RE = re.compile(
    rf"^[vV]?{_TRIPLE}(?:(?:[~_]?(?P<letters>[A-Za-z][A-Za-z0-9]{{0,15}}))|-(?P<release>[A-Za-z0-9][A-Za-z0-9._]*))?\Z"
)


def printed_version(token):
    """The eXpressWare version in a token as the vendor tools print it, None if it is not one.

    The suffix is kept as ``-suffix`` (``5.26.0d`` and ``5.26.0-d`` are both ``5.26.0-d``); a
    numeric release (``5.25.2-1``) is the GA version ``5.25.2``, as in :func:`rpm_to_version`.
    """
    match = _PRINTED_VERSION_RE.match(token or "")
    if not match:
        return None
    triple = ".".join(match.group(i) for i in (1, 2, 3))
    if match.group("release") is not None:
        suffix = _release_suffix(match.group("release"))
        if suffix is None:
            return None
    else:
        suffix = match.group("letters") or ""
    return f"{triple}-{suffix}" if suffix else triple


#: ``DIS_RELEASE_5_25_2_APR_24_2026`` (§5.2): the numbers before the date; an optional snapshot letter.
RELEASE_TAG_RE = re.compile(
    rf"\bDIS_RELEASE_{_NUMBER}_{_NUMBER}_{_NUMBER}(?:_([A-Za-z]))?_[A-Za-z]{{3}}_[0-9]{{1,2}}_[0-9]{{4}}\b"
)


def release_tag_version(text):
    """The version of the first release tag in ``text`` (``DIS_RELEASE_5_26_0_D_SEP_13_2026`` is
    5.26.0-d), None when there is none. The date after the numbers is never read as a version."""
    match = RELEASE_TAG_RE.search(text or "")
    if not match:
        return None
    triple = ".".join(match.group(i) for i in (1, 2, 3))
    return f"{triple}-{match.group(4).lower()}" if match.group(4) else triple


# ---------------------------------------------------------------------------
# RPM file names
# ---------------------------------------------------------------------------

_RPM_FILE_RE = re.compile(
    r"^(?P<name>Dolphin-[A-Za-z0-9_+]+(?:-[A-Za-z][A-Za-z0-9_+]*)*)"
    r"-(?P<version>\d+\.\d+\.\d+(?:[~_]?[A-Za-z][A-Za-z0-9]*)?)"
    r"-(?P<release>[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\.(?P<arch>[A-Za-z0-9_]+)\.rpm\Z"
)


def parse_rpm_filename(filename):
    """``Dolphin-PX-5.26.0-1.x86_64.rpm`` -> ``{"name", "version", "arch"}``; None if not such a name."""
    match = _RPM_FILE_RE.match(filename or "")
    version = rpm_to_version(match.group("version"), match.group("release")) if match else None
    if version is None or not is_version(version):
        return None
    return {"name": match.group("name"), "version": version, "arch": match.group("arch")}


# ---------------------------------------------------------------------------
# The installer (SIA)
# ---------------------------------------------------------------------------

#: The optional part before the version holds only what the ``sia`` module accepts in
#: an installer's name (``Dolphin_eXpressWare-Linux-x86_64-PX-5.26.0.sh``); it was
#: ``.*``, so ``Dolphin_eXpressWare-$(reboot)-5.26.0.sh`` had a version. A distribution tag
#: may follow the version (``-PX-5.26.0.el9.sh``, ``-5.26.0-d.ubuntu18.04.sh``, as in the CI
#: build names of §2); it starts with a letter, so ``-5.26.0.1.sh`` has no version (not 5.26.0).
#: The 3.x installer is ``DIS_install_<version>.sh`` (§1.1, §2).
SIA_NAME_RE = re.compile(
    r"^(?:Dolphin_eXpressWare-(?:[A-Za-z0-9._+-]*-)?|DIS_install_)"
    r"(?P<version>[0-9]+\.[0-9]+\.[0-9]+(?:-[A-Za-z][A-Za-z0-9]*)?)"
    r"(?:\.[A-Za-z][A-Za-z0-9_]*(?:\.[0-9A-Za-z_]+)*)?\.sh\Z"
)


def sia_version(filename):
    """The version in an SIA file name (``Dolphin_eXpressWare-5.26.0.sh``), None if it has none."""
    match = SIA_NAME_RE.match(filename or "") if isinstance(filename, str) else None
    # Only a valid version: compare_versions raised ValueError (not a refusal) on
    # e.g. Dolphin_eXpressWare-1234567.0.0.sh in sia.install_node.
    return match.group("version") if match and is_version(match.group("version")) else None
