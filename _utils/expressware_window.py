"""Maintenance windows: when a rollout may start a node.

Plain Python without Salt, I/O or a clock of its own (``now`` is a Unix time passed
in), like the rollout core. A window spec is one rule or several, separated by ``;``
(or given as a list)::

    Sat-Sun 01:00-05:00          Saturday and Sunday, 01:00 to 05:00
    Mon,Wed 22:00-02:00          Monday and Wednesday night: it opens at 22:00 on the day named and
                                 closes at 02:00 the next morning
    Mon-Fri,Sun 00:30-01:30      day ranges (``Fri-Mon`` wraps) and lists mix
    daily 01:00-05:00            every day (``01:00-05:00`` alone means the same)
    Sat 00:00-24:00              a whole day
    *                            always open (no window)

Times are wall-clock times of the window's time zone (an IANA name such as
``Europe/Oslo``; by default the master's local zone). Across a daylight saving time
change a window keeps its wall-clock bounds: ``01:00-05:00`` lasts three real hours on
the night the clocks go forward and five on the night they go back. A bound that
falls in the skipped hour is the moment the clocks jump; a window that ends in the
repeated hour closes at its second occurrence, one that starts in it opens at its first.

A node is started only when the window is open and the node's expected in-flight
time fits before the window closes (:meth:`Window.fits`); :func:`expected_seconds`
estimates that time from the nodes a rollout has done so far; the same estimate
decides when a node in flight has taken longer than it should, and the progress says
so (:func:`should_say`, :func:`waiting_note`).
"""

import datetime
import math
import os
import re
import time
import zoneinfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
#: Days scanned around ``now`` for the open periods: a weekly schedule, a week ahead and then some.
_HORIZON_DAYS = 16
#: The expected in-flight time is the longest node done so far times this (nodes vary).
MARGIN = 1.5


class WindowError(ValueError):
    """A window spec or time zone that cannot be understood; the message says what and why."""


def local_zone():
    """The master's local time zone as a ``tzinfo`` with its DST rules: ``$TZ`` when it names an
    IANA zone, else ``/etc/localtime``, else UTC. (The one place here that looks at the system.)"""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as handle:
            return zoneinfo.ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError):
        return datetime.timezone.utc


def zone_of(tz):
    """``tz`` as a ``tzinfo``: None (the master's local zone), an IANA name, or a ``tzinfo``."""
    if tz is None:
        return local_zone()
    if isinstance(tz, datetime.tzinfo):
        return tz
    if not isinstance(tz, str) or not tz.strip():
        raise WindowError(f"time zone must be an IANA name such as Europe/Oslo, not {tz!r}")
    try:
        return zoneinfo.ZoneInfo(tz.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"unknown time zone {tz!r} (want an IANA name such as Europe/Oslo or UTC)") from None


def _zone_name(zone):
    return getattr(zone, "key", None) or str(zone)


def _parse_time(text, rule, end=False):
    match = _TIME_RE.match(text)
    if not match:
        raise WindowError(f"window rule {rule!r}: {text!r} is not a time (want HH:MM, e.g. 01:00)")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if end and (hours, minutes) == (24, 0):
        return 24 * 60
    if hours > 23 or minutes > 59:
        raise WindowError(
            f"window rule {rule!r}: {text!r} is not a time of day (00:00 to 23:59"
            + (", or 24:00 as an end)" if end else ")")
        )
    return hours * 60 + minutes


def _parse_day(text, rule):
    name = text.strip().lower()
    for names in (DAYS, _FULL_DAYS):
        if name in names:
            return names.index(name)
    raise WindowError(
        f"window rule {rule!r}: unknown day {text.strip()!r} (want Mon, Tue, Wed, Thu, Fri, Sat, Sun, "
        "a range such as Sat-Sun, a list such as Mon,Wed, or daily)"
    )


def _parse_days(text, rule):
    if text.lower() in ("daily", "*"):
        return frozenset(range(7))
    days = set()
    for part in text.split(","):
        if not part.strip():
            raise WindowError(f"window rule {rule!r}: empty day in {text!r}")
        first, dash, last = part.partition("-")
        if not dash:
            days.add(_parse_day(first, rule))
            continue
        start, stop = _parse_day(first, rule), _parse_day(last, rule)
        day = start
        days.add(day)
        while day != stop:  # Fri-Mon wraps over the weekend
            day = (day + 1) % 7
            days.add(day)
    return frozenset(days)


def _parse_rule(rule):
    """``(days, start minute, end minute)``; an end at or before the start is on the next day."""
    words = rule.split()
    if len(words) == 1 and ":" not in words[0]:
        raise WindowError(f"window rule {rule!r}: no time range (want DAYS HH:MM-HH:MM, e.g. 'Sat-Sun 01:00-05:00')")
    if len(words) == 1:
        days_text, hours_text = "daily", words[0]
    elif len(words) == 2:
        days_text, hours_text = words
    else:
        raise WindowError(
            f"window rule {rule!r}: want DAYS HH:MM-HH:MM, e.g. 'Sat-Sun 01:00-05:00' (separate several rules with ';')"
        )
    if "-" not in hours_text:
        raise WindowError(
            f"window rule {rule!r}: {hours_text!r} is not a time range (want HH:MM-HH:MM, e.g. 01:00-05:00)"
        )
    first, _, last = hours_text.partition("-")
    start, end = _parse_time(first, rule), _parse_time(last, rule, end=True)
    if start == end:
        raise WindowError(f"window rule {rule!r}: it opens and closes at the same time (a whole day is 00:00-24:00)")
    return _parse_days(days_text, rule), start, end


def parse(spec, tz=None):
    """A :class:`Window` from ``spec`` (a string, rules separated by ``;``, or a list of
    rules) in the time zone ``tz`` (IANA name, ``tzinfo``, or None: the master's local zone).
    Raises :class:`WindowError` naming what is wrong."""
    if isinstance(spec, str):
        rules = spec.split(";")
    elif isinstance(spec, (list, tuple)) and all(isinstance(r, str) for r in spec):
        rules = list(spec)
    else:
        raise WindowError(f"window must be a text such as 'Sat-Sun 01:00-05:00' or a list of such, not {spec!r}")
    rules = [" ".join(r.split()) for r in rules]
    if not rules or any(not r for r in rules):
        raise WindowError(
            f"window {spec!r} has an empty rule (want e.g. 'Sat-Sun 01:00-05:00; Wed 22:00-02:00', or * for always)"
        )
    zone = zone_of(tz)
    if "*" in rules:
        if len(rules) > 1:
            raise WindowError(f"window {spec!r}: * (always open) cannot be combined with other rules")
        return Window("*", zone, [])
    return Window("; ".join(rules), zone, [_parse_rule(r) for r in rules])


class Window:
    """A parsed window; every method takes ``now`` as a Unix time."""

    def __init__(self, spec, zone, rules):
        self.spec = spec
        self.zone = zone
        self.rules = rules
        self.always = not rules

    def __repr__(self):
        return f"Window({self.spec!r}, {_zone_name(self.zone)!r})"

    def describe(self):
        """The window as the operator reads it, with its zone: ``Sat-Sun 01:00-05:00 (Europe/Oslo)``."""
        return "always" if self.always else f"{self.spec} ({_zone_name(self.zone)})"

    def format(self, when):
        """A Unix time as the window's wall clock, e.g. ``Sat 2026-12-05 01:00 CET``."""
        return datetime.datetime.fromtimestamp(when, self.zone).strftime("%a %Y-%m-%d %H:%M %Z")

    # -- the open periods ---------------------------------------------------

    def _instant(self, wall, last=False):
        """The Unix time at which the wall clock reads ``wall`` (naive): for a time the clocks
        skip, the moment they jump; for a time they repeat, the first occurrence (the last
        with ``last``)."""
        first = wall.replace(tzinfo=self.zone, fold=0).timestamp()
        second = wall.replace(tzinfo=self.zone, fold=1).timestamp()
        if datetime.datetime.fromtimestamp(first, self.zone).replace(tzinfo=None) == wall:
            return second if last else first
        # Skipped: the first instant whose wall time is past ``wall`` (whole seconds suffice:
        # zones change their offset on whole seconds).
        low, high = math.floor(min(first, second)), math.ceil(max(first, second))
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.datetime.fromtimestamp(middle, self.zone).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return float(high)

    def periods(self, now):
        """The open periods ``[(opens, closes)]`` (Unix times, merged where they touch) from a
        couple of days before ``now`` to two weeks after."""
        today = datetime.datetime.fromtimestamp(now, self.zone).date()
        spans = []
        for offset in range(-2, _HORIZON_DAYS):
            day = today + datetime.timedelta(days=offset)
            midnight = datetime.datetime.combine(day, datetime.time())
            for days, start, end in self.rules:
                if day.weekday() not in days:
                    continue
                ends_next_day = end <= start
                opens = self._instant(midnight + datetime.timedelta(minutes=start))
                closes = self._instant(midnight + datetime.timedelta(days=int(ends_next_day), minutes=end), last=True)
                spans.append((opens, closes))
        merged = []
        for opens, closes in sorted(spans):
            if merged and opens <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
            else:
                merged.append((opens, closes))
        return merged

    def is_open(self, now):
        return self.always or any(opens <= now < closes for opens, closes in self.periods(now))

    def closes_at(self, now):
        """When the open period ``now`` is in ends (``math.inf`` for always); None when closed."""
        if self.always:
            return math.inf
        return next((closes for opens, closes in self.periods(now) if opens <= now < closes), None)

    def fits(self, now, expected_seconds):
        """May a node whose update is expected to take ``expected_seconds`` start at ``now``?
        Only inside the window and when it is expected back before the window closes."""
        closes = self.closes_at(now)
        return closes is not None and now + expected_seconds <= closes

    def next_open(self, now):
        """When the window is next open: ``now`` if it is open, else the next opening."""
        if self.always:
            return now
        for opens, closes in self.periods(now):
            if now < closes:
                return max(now, opens)
        return None  # not reached: every rule opens at least once a week

    def next_start(self, now, expected_seconds):
        """The first moment from ``now`` at which a node expected to take ``expected_seconds``
        fits (:meth:`fits`); None when no period in the next two weeks is long enough."""
        if self.always:
            return now
        for opens, closes in self.periods(now):
            start = max(now, opens)
            if start + expected_seconds <= closes:
                return start
        return None

    def wait_reason(self, now, expected_seconds, what="the next node", then="goes on by itself at"):
        """None when a node may start at ``now``, else why not and until when, for a rollout's
        paused reason and ``rolling.status`` (``then``: what happens at the next start)."""
        if self.fits(now, expected_seconds):
            return None
        start = self.next_start(now, expected_seconds)
        if start is None:
            return (
                f"maintenance window {self.describe()}: no opening in the next two weeks is long enough for "
                f"{what} (expected {_duration(expected_seconds)})"
            )
        closes = self.closes_at(now)
        if closes is None:
            why = f"outside the maintenance window {self.describe()}"
        else:
            why = (
                f"the maintenance window {self.describe()} closes at {self.format(closes)}, before {what} "
                f"(expected {_duration(expected_seconds)}) would be done"
            )
        return f"{why}; {then} {self.format(start)}"


def expected_seconds(record, margin=MARGIN):
    """How long the next node of ``record`` is expected to be in flight: the longest node it
    has updated so far times ``margin``, at most its ``node_timeout`` (a node that takes
    longer fails anyway); ``node_timeout`` before any node is done."""
    limit = record["options"]["node_timeout"]
    done = [
        node["finished"] - node["started"]
        for node in record["nodes"].values()
        if node["phase"] == "active" and node.get("started") is not None and node.get("finished") is not None
    ]
    if not done:
        return float(limit)
    return float(min(limit, max(done) * margin))


# -- how long a node should take: long waits say so ------------------------------------

#: Seconds between two progress lines about a node in flight longer than it should take, unless the rollout's
#: ``progress_every`` option says otherwise (records written before it existed have none).
SAY_EVERY = 30


def _done_seconds(record):
    return [
        node["finished"] - node["started"]
        for node in record["nodes"].values()
        if node["phase"] == "active" and node.get("started") is not None and node.get("finished") is not None
    ]


def should_say(record, minion, now, said_at=None):
    """Is it time for a progress line about ``minion``, in flight since its ``started``? The
    first once it has been in flight longer than it should take (:func:`expected_seconds`, or the
    rollout's ``progress_every``, :data:`SAY_EVERY` by default, before any node is done), then every
    ``progress_every`` seconds after ``said_at`` (when the last line was said)."""
    node = record["nodes"][minion]
    if node["phase"] not in ("stopping", "installing", "waiting") or node.get("started") is None:
        return False
    every = record["options"].get("progress_every", SAY_EVERY)
    if said_at is not None:
        return now - said_at >= every
    first = expected_seconds(record) if _done_seconds(record) else every
    return now - node["started"] >= min(first, every)


def waiting_note(record, minion, now, node_state=None):
    """The progress line (and ``rolling.status`` note) for ``minion`` in flight: how long out of
    how long, what the other nodes took, and what the node's own look at itself says
    (``expressware.node_state``: its state, versions, services and ``dis_diag``); ``node_state``
    None when it did not answer, a text when it answered with an error."""
    node = record["nodes"][minion]
    waited = now - node["started"]
    limit = record["options"]["node_timeout"]
    text = f"{minion}: {node['phase']} for {_duration(waited)} of the {_duration(limit)} allowed (node_timeout)"
    done = _done_seconds(record)
    if done:
        text += f"; the nodes done so far took up to {_duration(max(done))}"
    if isinstance(node_state, dict):
        text += (
            f"; the node says: {node_state.get('state')}, installed {node_state.get('installed')}, "
            f"running {node_state.get('running')}"
        )
        stopped = sorted(name for name, running in (node_state.get("services") or {}).items() if not running)
        reasons = [r for r in node_state.get("reasons") or [] if not r.startswith("services not running")]
        if stopped:
            text += f"; services not running: {', '.join(stopped)}"
        if reasons:
            text += "; " + "; ".join(map(str, reasons))
    elif node_state is None:
        text += "; the node did not answer (rebooting?)"
    else:
        text += f"; asking the node failed: {node_state}"
    return text


def _duration(seconds):
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def first_start(options, now):
    """When a rollout with ``options`` (its ``window``, ``window_tz``, ``node_timeout``) started at ``now`` would
    begin its first node, for ``rolling.plan``."""
    win = parse(options["window"], options["window_tz"])
    start = win.next_start(now, float(options["node_timeout"]))
    return {
        "window": win.describe(),
        "first_node": "now"
        if start is not None and start <= now
        else (
            win.format(start)
            if start is not None
            else f"no opening in the next two weeks is long enough for node_timeout {options['node_timeout']} s"
        ),
    }


#: For tests only: the name of an environment variable naming a file that holds seconds to add to the clock the
#: maintenance window is read with (re-read at every look), so that a test on real daemons moves the window's time.
TEST_CLOCK_OFFSET_ENV = "EXPRESSWARE_TEST_WINDOW_CLOCK_OFFSET_FILE"


def clock_from_env():
    """The clock a test on real daemons gives the runner (``TEST_CLOCK_OFFSET_ENV``), else None."""
    path = os.environ.get(TEST_CLOCK_OFFSET_ENV)
    if not path:
        return None  # the driver's own: the adapter's time

    def clock():
        try:
            with open(path, encoding="utf-8") as handle:
                return time.time() + float(handle.read().strip() or 0)
        except (OSError, ValueError):
            return time.time()

    return clock
