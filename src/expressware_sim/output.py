"""How the simulated tools word their output: the one place that knows the output styles.

``simple`` (the default) is the interface of expressware-facts.md §10::

    Dolphin IRM 5.25.2 is running.
    Dolphin Node Manager is running (pid 3172).
    Dolphin IRM is stopped.

``dated`` prints the vendor's own 3.x forms of §3.3 on a 5.x stack (what an implementer
writing from the vendor documents prints): a build date after the version, the ``(GX)``
qualifier where the facts show it (the IRM driver, §3.3/§5.2), a quoted codename, date and
build note for SuperSockets, and another stopped wording::

    Dolphin KOSIF 5.25.2 ( April 24th 2026 ) is running.
    Dolphin IRM (GX) 5.25.2 ( April 24th 2026 ) is running.
    Dolphin Node Manager is running (pid 3172).
    Dolphin SuperSockets 5.25.2 "St.Martin", Apr 24th 2026 (built Apr 24 2026 12:00:00) is running.
    Dolphin IRM is not running.

and in ``dis_diag`` the release tag (``DIS_RELEASE_5_25_2_APR_24_2026``, §5.2) with the summary
after the verdict. ``dis_services start|stop`` print the verbatim lines of §3.1 in both styles.
"""

from __future__ import annotations

import datetime
import zlib

OUTPUT_STYLES = ("simple", "dated")
DEFAULT_OUTPUT_STYLE = "simple"

#: 5.25.2's date is the one of its release tag (§5.2); other versions get a date of their own.
_KNOWN_DATES = {"5.25.2": datetime.date(2026, 4, 24)}
_CODENAME = "St.Martin"  # §3.3
#: Services whose banner carries the (GX) qualifier (§3.3: "Dolphin IRM (GX) 5.25.2").
_QUALIFIED = {"dis_irm": "(GX)"}


def validate_output_style(style) -> str:
    from .versions import SimError  # pylint: disable=import-outside-toplevel

    if style not in OUTPUT_STYLES:
        raise SimError(f"unknown output style {style!r} (known: {', '.join(OUTPUT_STYLES)})")
    return style


def style_of(st: dict) -> str:
    """The node's output style (node files written before the option have none: simple)."""
    return st.get("output_style") or DEFAULT_OUTPUT_STYLE


def build_date(version: str) -> datetime.date:
    """The build date the drivers of ``version`` report: fixed per version."""
    if version in _KNOWN_DATES:
        return _KNOWN_DATES[version]
    return datetime.date(2026, 4, 24) + datetime.timedelta(days=zlib.crc32(version.encode()) % 365 - 182)


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def long_date(version: str) -> str:
    """``April 24th 2026``"""
    day = build_date(version)
    return f"{day.strftime('%B')} {_ordinal(day.day)} {day.year}"


def short_date(version: str) -> str:
    """``Apr 24th 2026``"""
    day = build_date(version)
    return f"{day.strftime('%b')} {_ordinal(day.day)} {day.year}"


def release_tag(version: str) -> str:
    """``DIS_RELEASE_5_25_2_APR_24_2026`` (a snapshot's letter after the numbers)."""
    day = build_date(version)
    numbers, _, suffix = version.partition("-")
    parts = numbers.split(".") + ([suffix.upper()] if suffix else [])
    return f"DIS_RELEASE_{'_'.join(parts)}_{day.strftime('%b').upper()}_{day.day:02d}_{day.year}"


def status_line(style: str, unit: str, short: str, svc: dict) -> str:
    """One line of ``dis_services status`` for the service ``unit`` (named ``short``)."""
    if not svc["running"]:
        return f"Dolphin {short} is {'not running' if style == 'dated' else 'stopped'}."
    if unit == "dis_nodemgr":
        return f"Dolphin Node Manager is running (pid {svc['pid']})."
    version = svc["version"]
    if style != "dated":
        return f"Dolphin {short} {version} is running."
    name = f"{short} {_QUALIFIED[unit]}" if unit in _QUALIFIED else short
    if unit == "dis_supersockets":
        day = build_date(version)
        built = f"{day.strftime('%b')} {day.day:2d} {day.year} 12:00:00"
        return f'Dolphin {name} {version} "{_CODENAME}", {short_date(version)} (built {built}) is running.'
    return f"Dolphin {name} {version} ( {long_date(version)} ) is running."


def diag_version_lines(style: str, tool_version: str | None, driver_version: str | None) -> list[str]:
    """The version lines at the top of ``dis_diag`` (§5.2)."""
    lines = [f"dis_diag version: {tool_version}"]
    if driver_version:
        lines.append(f"Driver version: Dolphin IRM (GX) {driver_version}")
        if style == "dated":
            lines.append(f"ExpressWare release line shown by driver: {release_tag(driver_version)}")
    return lines


def diag_verdict_lines(style: str, passed: bool, errors: int) -> list[str]:
    """The summary and the verdict: the verdict last (§10), or (dated) the summary after it."""
    summary = f"0 warnings and {errors} errors"
    verdict = f"TEST RESULT: {'PASSED' if passed else 'FAILED'}"
    return [verdict, summary] if style == "dated" else [summary, verdict]
