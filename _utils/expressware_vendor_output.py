"""The output of the vendor tools: ``dis_services`` (status, start/stop lines), ``dis_diag`` and the ``rpm`` query.

Part of :mod:`expressware_vendor`, the front end the loader modules load (it re-exports every public name of this
module); the versions the tools print are read by ``expressware_vendor_versions``. Pure Python, no Salt dunders, no
I/O. The interface is the one fixed in ``expressware-facts.md`` section 10.

Parsers raise :class:`VendorOutputError` (a ``ValueError``) on output they cannot
understand; callers turn that into ``CommandExecutionError``.
"""

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
is_version = _versions.is_version
printed_version = _versions.printed_version
release_tag_version = _versions.release_tag_version
rpm_to_version = _versions.rpm_to_version
_RELEASE_TAG_RE = _versions.RELEASE_TAG_RE


class VendorOutputError(ValueError):
    """Output of a vendor tool that does not have the documented shape."""


# ---------------------------------------------------------------------------
# dis_services
#
# Forms understood (expressware-facts.md §3 and §10, and what an implementer writing from
# the same documents would plausibly print; tests/unit/test_vendor_corpus.py holds them):
#
# - status:   ``Dolphin <name> [(<qualifier>)|"<codename>"] [<version> [<build note>]] <state>``
#   where the build note is anything after the version (``( November 13th 2007 )``,
#   ``"St.Martin", Nov 7th 2007 (built Nov 14 2007)``), the state is a running wording
#   (``is running.``, ``is running...``, ``running``, ``is active``, ``[  OK  ]``) or a stopped
#   one (``is stopped.``, ``is not running.``, ``is dead``, ``dead but pid file exists``,
#   ``is not loaded``, ``[FAILED]``), and ``(pid N)`` may stand anywhere. A line whose end was
#   cut off (``(built Nov 14 200…``) after a version is a running driver's banner. The name may
#   also be the service's unit (``dis_irm (pid 3172) is running...``, the initscripts form).
# - start/stop: ``Starting|Stopping [Dolphin] <name>[ driver(s)] [banner]  [  OK  ]|[FAILED]``,
#   the mark with any spacing, at the end or (Debian) at the start, or ``... done.``/``failed``.
#
# The version is the token right after the name (and its qualifiers): a date's year or a
# codename is never taken for it; a line with an x.y.z elsewhere but none there is not understood.
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
#: 3.x ("Dolphin Express") adapter drivers: no KOSIF layer below them (§3.1, §3.3).
LEGACY_PRODUCTS = ("DX", "SCI")
#: Services a status may report besides :data:`SERVICES` ("all Dolphin services installed on a
#: machine", §3): SmartIO where Dolphin-SmartIO is installed (§5.1), the Network Manager of a
#: Cluster Management Node (§3.4). Reported when present, never required.
OPTIONAL_SERVICES = (
    ("smartio", "SmartIO driver", "SmartIO"),
    ("networkmgr", "Network Manager", "Network Manager"),
)

#: (key, names as printed after "Dolphin", unit names); matched without regard to case.
_SERVICE_NAMES = (
    ("kosif", ("KOSIF",), ("dis_kosif",)),
    ("adapter", PRODUCTS + LEGACY_PRODUCTS, tuple(f"dis_{p.lower()}" for p in PRODUCTS + LEGACY_PRODUCTS)),
    ("irm", ("IRM",), ("dis_irm",)),
    (
        "nodemgr",
        ("Node Manager", "NodeManager"),
        ("dis_nodemgr",) + tuple(f"dis_{p.lower()}_nodemgr" for p in PRODUCTS + LEGACY_PRODUCTS),
    ),
    ("sisci", ("SISCI",), ("dis_sisci",)),
    ("supersockets", ("SuperSockets", "Super Sockets"), ("dis_supersockets", "dis_ssocks")),
    ("smartio", ("SmartIO",), ("dis_smartio",)),
    ("networkmgr", ("Network Manager", "NetworkManager"), ("dis_networkmgr",)),
)
# Longest first: "Node Manager" before a shorter name that starts the same way.
_NAME_TABLE = sorted(((name, key) for key, names, _ in _SERVICE_NAMES for name in names), key=lambda i: -len(i[0]))
_UNIT_TABLE = sorted(((unit, key) for key, _, units in _SERVICE_NAMES for unit in units), key=lambda i: -len(i[0]))


#: Terminal control sequences: Red Hat's initscripts move to the mark's column and colour it
#: (``\x1b[60G[\x1b[0;32m  OK  \x1b[0;39m]``) even when the output is not a terminal.
_ANSI_RE = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[()][A-Za-z0-9])")


def _normal(line):
    """One line without terminal control sequences, every run of white space (tabs too) as one space."""
    return " ".join(_ANSI_RE.sub(" ", line).split())


_NAME_GOES_ON_RE = re.compile(r"[A-Za-z0-9_-]|\.[A-Za-z0-9]")


def _match_service(text):
    """``(key, label, rest)`` for text that starts with a service name, else None.

    ``Dolphin <name>`` or a unit name (``dis_irm``), then an optional ``driver``/``drivers``.
    """
    lowered = text.lower()
    candidates = []
    if lowered.startswith("dolphin "):
        candidates = [(len("dolphin "), _NAME_TABLE)]
    candidates.append((0, _UNIT_TABLE))
    for start, table in candidates:
        for name, key in table:
            end = start + len(name)
            # Not a longer name (IRMX, dis_irm_x) nor a file (dis_irm.ko); a full stop may end it.
            if lowered[start:end] == name.lower() and not _NAME_GOES_ON_RE.match(text, end):
                label_end = end
                driver = re.match(r" drivers?\b", text[end:], re.IGNORECASE)
                if driver:
                    label_end = end + driver.end()
                return key, text[start:label_end], text[label_end:]
    return None


def _lines(text):
    return [line.rstrip() for line in (text or "").splitlines() if line.strip()]


_GROUP_RE = re.compile(r'\([^()]*\)?|\[[^\[\]]*\]?|"[^"]*"?|\u201c[^\u201d]*\u201d?|[,;]|[^\s,;()\[\]"\u201c]+')
_VERSION_WORDS = ("version", "version:", "ver", "ver.", "rev", "release")
_RUNNING_WORDS = re.compile(r"\b(?:running|active|loaded|started|up)\b")
_STOPPED_WORDS = re.compile(
    r"\b(?:not running|not loaded|not active|not started|not present"
    r"|stopped|dead|inactive|unloaded|down|failed|exited)\b"
)
_OK_MARKS = ("OK", "DONE", "PASSED", "SUCCESS", "RUNNING", "ACTIVE")
_FAILED_MARKS = ("FAILED", "FAIL", "ERROR", "WARNING", "WARN", "STOPPED", "DEAD", "NOT RUNNING")
_PID_RE = re.compile(r"\bpid\s*[:=]?\s*([0-9]{1,10})\b", re.IGNORECASE)
_LOOSE_VERSION_RE = re.compile(r"(?<![0-9.])[vV]?[0-9]+\.[0-9]+\.[0-9]+")


def _banner(rest):
    """Split what follows a service name into ``(version, tail)``; version None when there is none.

    The version is the first token that starts with a digit, after qualifiers in parentheses
    or quotes (``(GX)``, ``"St.Martin"``), the word ``version`` and at most two bare capitalised
    qualifiers (``GX``); anything after it is the build note and the state. A comma or another
    word ends the search. :class:`VendorOutputError` when that token is not a version.
    """
    words_skipped = 0
    for match in _GROUP_RE.finditer(rest):
        token = match.group(0)
        if token[0] in '(["\u201c':
            continue  # a qualifier or codename before the version
        if token in ",;":
            break
        if token[:1].isdigit() or (token[:1] in "vV" and token[1:2].isdigit()):
            # A version cut off ("5.25.2…" may have been 5.25.21) is not read; a full stop
            # or colon after it is punctuation.
            version = None if token.endswith(("…", "..")) else printed_version(re.sub(r"[.:]\Z", "", token))
            if version is None:
                raise VendorOutputError(f"cannot read the version {token!r}")
            return version, rest[match.end() :]
        if _RELEASE_TAG_RE.fullmatch(token):
            return release_tag_version(token), rest[match.end() :]  # the tag where the version stands
        if token.lower() in _VERSION_WORDS:
            continue
        if words_skipped < 2 and re.fullmatch(r"[A-Z][A-Z0-9]{0,7}", token):
            words_skipped += 1  # a bare qualifier such as GX
            continue
        break
    return None, rest


def _state(tail, version):
    """``(running, pid)`` from the text after the version (the whole text after the name when
    there is none). :class:`VendorOutputError` when it does not say; see the cut-off rule below."""
    pid = _PID_RE.search(tail)
    running = True, int(pid.group(1)) if pid else None
    marks = [m.group(1).strip().upper() for m in re.finditer(r"\[\s*([A-Za-z][A-Za-z ]*?)\s*\]", tail)]
    # Dates, codenames and build notes stand in parentheses or quotes: they say nothing of the state.
    words = re.sub(r'\([^()]*\)?|\[[^\[\]]*\]?|"[^"]*"?|\u201c[^\u201d]*\u201d?', " ", tail).lower()
    words = " ".join(words.split()).rstrip(" .…!")
    # "is <state>" says it; whatever follows it ("is running, 0 links down") does not.
    phrase = re.search(r"\b(?:is|are)\s+((?:not\s+)?[a-z]+)", words)
    if phrase and _STOPPED_WORDS.fullmatch(phrase.group(1)):
        return False, None
    if phrase and _RUNNING_WORDS.fullmatch(phrase.group(1)):
        return running
    if not phrase and _STOPPED_WORDS.search(words):  # "dead but pid file exists", "stopped"
        return False, None
    if not phrase and _RUNNING_WORDS.search(words):  # "running", "5.25.2: running"
        return running
    for mark in marks:
        if mark in _OK_MARKS:
            return running
        if mark in _FAILED_MARKS:
            return False, None
    if re.search(r"\bis r(?:u(?:n(?:n(?:i(?:ng?)?)?)?)?)?\Z", words):
        return running  # "is running." cut off
    if re.search(r"\b(?:is|are|unknown|error|not)\b", words) or marks:
        raise VendorOutputError("cannot tell whether it runs")
    if version is None and not pid:
        raise VendorOutputError("neither a version nor a state")
    # A banner whose end is missing (cut off, or printed without "is running."): only a
    # loaded driver reports its version; the exit status, checked by the caller, backs it.
    return running


def parse_status_line(line):
    """One ``dis_services status`` (or ``service dis_<x> status``) line: ``(key, entry)``.

    ``entry`` is ``{"label", "running", "version", "pid"}``; ``version`` only for a running
    service (the version it runs), ``pid`` where one is printed. Raises
    :class:`VendorOutputError` naming the line when it cannot be understood.
    """
    text = _normal(line)
    found = _match_service(text)
    try:
        if found is None:
            raise VendorOutputError("not a Dolphin service")
        key, label, rest = found
        version, tail = _banner(rest)
        if version is None and _LOOSE_VERSION_RE.search(re.sub(r'\([^()]*\)|"[^"]*"', " ", rest)):
            raise VendorOutputError("a version stands where it is not expected")
        running, pid = _state(tail, version)
    except VendorOutputError as exc:
        raise VendorOutputError(f"unexpected dis_services status line: {line!r} ({exc})") from None
    return key, {"label": label, "running": running, "version": version if running else None, "pid": pid}


def _mark(text):
    """``(ok, rest)`` from the end of a start/stop line: True, False, or None when cut off."""
    match = re.search(r"\[\s*([A-Za-z][A-Za-z ]*?)?\s*(\])?\s*$", text)
    if match:
        word = (match.group(1) or "").upper()
        rest = text[: match.start()]
        if word in _OK_MARKS:
            return True, rest
        if word in _FAILED_MARKS:
            return False, rest
        if match.group(2) and word:
            raise VendorOutputError(f"unknown mark [{word}]")
        return None, rest  # "[  OK" cut off before its end
    match = re.search(r"(?:\.\.\.|…|:|\s)\s*(done|ok|succeeded|failed|failure|error)[.!]*\s*$", text, re.IGNORECASE)
    if match:
        return match.group(1).lower() in ("done", "ok", "succeeded"), text[: match.start()]
    return None, text


_ACTION_RE = re.compile(
    r"^(?:\[\s*(?P<lead>[A-Za-z]+)\s*\]\s*)?"
    r"(?P<verb>Starting|Stopping|Loading|Unloading|Shutting down)\s+(?P<what>.+)$",
    re.IGNORECASE,
)


def parse_action_output(text, retcode=None):
    """Parse ``dis_services start|stop|restart`` output into an ordered list.

    Each item is ``{"service": key, "label": label, "action": "start"|"stop", "ok": bool}``.
    A line whose mark is cut off (or missing) takes its verdict from ``retcode`` (§10: exit
    status 0 when every line is OK); without ``retcode`` its ``ok`` is None. A service's
    status line among them (``Dolphin IRM 3.3.0 ( November 13th 2007 ) is running.``, as an
    init script may print after a start) is understood and passed over: the marks decide.
    """
    result = []
    for line in _lines(text):
        normal = _normal(line)
        match = _ACTION_RE.match(normal)
        if not match:
            try:
                parse_status_line(line)
                continue
            except VendorOutputError:
                pass
        found = _match_service(match.group("what")) if match else None
        if not found and match and not match.group("what").lower().startswith("dolphin "):
            found = _match_service("Dolphin " + match.group("what"))
        try:
            if not found:
                raise VendorOutputError("not a Dolphin service")
            key, label, rest = found
            if match.group("lead"):
                lead = match.group("lead").upper()
                ok = True if lead in _OK_MARKS else False if lead in _FAILED_MARKS else None
                if ok is None:
                    raise VendorOutputError(f"unknown mark [{lead}]")
                trailing, _ = _mark(rest)
                ok = ok if trailing is None else ok and trailing
            else:
                ok, _ = _mark(rest)
        except VendorOutputError as exc:
            raise VendorOutputError(f"unexpected dis_services line: {line!r} ({exc})") from None
        if ok is None and retcode is not None:
            ok = retcode == 0
        action = "start" if match.group("verb").lower() in ("starting", "loading") else "stop"
        result.append({"service": key, "label": label, "action": action, "ok": ok})
    if not result:
        raise VendorOutputError("dis_services printed nothing")
    return result


def parse_status(text):
    """Parse ``dis_services status`` output.

    Returns ``{key: {"label", "running", "version", "pid"}}`` in start order (then the
    :data:`OPTIONAL_SERVICES` reported). Every service of :data:`SERVICES` must be reported exactly
    once; KOSIF only on a 5.x stack (a 3.x ``DX``/``SCI`` adapter driver has no KOSIF below it).
    """
    services = {}
    for line in _lines(text):
        key, entry = parse_status_line(line)
        if key in services:
            raise VendorOutputError(f"dis_services status reported {entry['label']} twice")
        services[key] = entry
    required = [key for key, _, _ in SERVICES]
    adapter = services.get("adapter")
    if adapter and adapter["label"].split()[0].upper().replace("DIS_", "") in LEGACY_PRODUCTS:
        required.remove("kosif")
    missing = [key for key in required if key not in services]
    if missing:
        raise VendorOutputError(f"dis_services status did not report: {', '.join(missing)}")
    order = [key for key, _, _ in SERVICES + OPTIONAL_SERVICES]
    return {key: services[key] for key in order if key in services}


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

#: The verdict line: ``TEST RESULT: PASSED`` (§4, §10), with any case, spacing or decoration
#: (``*** Test result : FAILED ***``, ``TEST RESULT: PASSED (0 warnings and 0 errors)``).
_RESULT_RE = re.compile(r"\bTEST\s+RESULT\s*[:=]?\s*(PASSED|PASS|FAILED|FAIL)\b", re.IGNORECASE)
#: ``dis_diag version: 5.25.2`` / ``dis_diag 5.26.0`` (§5.2).
_DIAG_TOOL_RE = re.compile(r"^dis_diag\b(?:\s+version)?\s*[:=]?\s*(\S+)", re.IGNORECASE)
#: ``Driver version: Dolphin IRM (GX) 5.25.2`` (§5.2): the banner after the label, read like a status line's.
_DIAG_DRIVER_RE = re.compile(r"^Driver(?:\s+version)?\s*[:=]\s*(?P<banner>.+)$", re.IGNORECASE)


def _diag_versions(lines):
    """The versions ``dis_diag`` prints, each None when absent or unreadable (they never refuse)."""
    found = {"tool_version": None, "driver_version": None, "release_version": None}
    for line in lines:
        text = _normal(line)
        tool = _DIAG_TOOL_RE.match(text)
        if tool and found["tool_version"] is None:
            found["tool_version"] = printed_version(re.sub(r"[.,;:]\Z", "", tool.group(1)))
        driver = _DIAG_DRIVER_RE.match(text)
        if driver and found["driver_version"] is None:
            service = _match_service(driver.group("banner"))
            try:
                found["driver_version"] = _banner(service[2])[0] if service else None
            except VendorOutputError:
                pass
        if found["release_version"] is None:
            found["release_version"] = release_tag_version(text)
    return found


def parse_diag(text):
    """Parse ``dis_diag -V 0``: ``{"passed": bool, "lines": [...], "tool_version", "driver_version",
    "release_version"}``.

    The verdict is the ``TEST RESULT`` line wherever it stands (the summary or a timing note may
    follow it; the layout is not documented, §4.3); several verdict lines must agree. The versions
    are what ``dis_diag`` prints (``dis_diag version: 5.25.2``, ``Driver version: Dolphin IRM (GX)
    5.26.0-d``, ``DIS_RELEASE_5_25_2_APR_24_2026``), None when absent.
    """
    lines = _lines(text)
    verdicts = {match.group(1).upper().startswith("PASS") for match in map(_RESULT_RE.search, lines) if match}
    if not verdicts:
        raise VendorOutputError("dis_diag output has no 'TEST RESULT: PASSED|FAILED' line")
    if len(verdicts) > 1:
        raise VendorOutputError("dis_diag output has both 'TEST RESULT: PASSED' and 'TEST RESULT: FAILED'")
    return {"passed": verdicts.pop(), "lines": lines, **_diag_versions(lines)}


# ---------------------------------------------------------------------------
# rpm
# ---------------------------------------------------------------------------

#: The query the execution module runs: ``rpm -qa --queryformat RPM_QUERYFORMAT 'Dolphin-*'``.
RPM_QUERYFORMAT = "%{NAME} %{VERSION}-%{RELEASE}\\n"
RPM_PATTERN = "Dolphin-*"
#: ``NAME VERSION-RELEASE`` (the query format, any white space between), or rpm's default
#: ``NAME-VERSION-RELEASE.ARCH`` should an rpm wrapper ignore the query format.
_RPM_LINE_RE = re.compile(
    r"^(?P<name>Dolphin-[A-Za-z0-9_.+-]+)\s+(?P<version>[0-9][0-9A-Za-z.~_]*)-(?P<release>[0-9A-Za-z._]+)$"
    r"|^(?P<name2>Dolphin-[A-Za-z0-9_+]+(?:-[A-Za-z][A-Za-z0-9_+]*)*)-(?P<version2>[0-9][0-9A-Za-z.~_]*)"
    r"-(?P<release2>[0-9A-Za-z_]+(?:\.[0-9A-Za-z_]+)*?)"
    r"(?:\.(?:x86_64|aarch64|ppc64le|ppc64|i686|i386|noarch|armv7hl|s390x))?$"
)


def parse_rpm_packages(text):
    """Parse ``NAME VERSION-RELEASE`` lines into ``{name: eXpressWare version}`` (see :func:`rpm_to_version`)."""
    packages = {}
    for line in _lines(text):
        match = _RPM_LINE_RE.match(line.strip())
        if not match:
            raise VendorOutputError(f"unexpected rpm output line: {line!r}")
        name = match.group("name") or match.group("name2")
        raw = (match.group("version") or match.group("version2"), match.group("release") or match.group("release2"))
        version = rpm_to_version(*raw)
        if version is None or not is_version(version):
            raise VendorOutputError(
                f"package {name} has version {'-'.join(raw)!r}, not an eXpressWare version (line {line!r})"
            )
        packages[name] = version
    return packages
