"""Maintenance windows: parsing, open/closed, what fits before the close, DST, the expected in-flight time."""

import datetime
import math
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.shared_code import load

window = load("expressware_window")
rollout = load("expressware_rollout")

UTC = "UTC"
OSLO = "Europe/Oslo"


def at(zone, *fields):
    """The Unix time of a wall-clock time in ``zone`` (first occurrence when repeated)."""
    return datetime.datetime(*fields, tzinfo=zoneinfo.ZoneInfo(zone)).timestamp()


def utc(*fields):
    return datetime.datetime(*fields, tzinfo=datetime.timezone.utc).timestamp()


# 2026-12-05 is a Saturday; 2026-12-07 a Monday.
SAT = (2026, 12, 5)
SUN = (2026, 12, 6)
MON = (2026, 12, 7)
TUE = (2026, 12, 8)


# -- parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, days",
    [
        ("Sat-Sun 01:00-05:00", {5, 6}),
        ("sat-SUN 01:00-05:00", {5, 6}),
        ("Saturday-Sunday 01:00-05:00", {5, 6}),
        ("Fri-Mon 01:00-05:00", {4, 5, 6, 0}),
        ("Mon-Wed,Fri 01:00-05:00", {0, 1, 2, 4}),
        ("daily 01:00-05:00", set(range(7))),
        ("* 01:00-05:00", set(range(7))),
        ("01:00-05:00", set(range(7))),
    ],
)
def test_parse_days(spec, days):
    parsed = window.parse(spec, UTC)
    assert [set(d) for d, _, _ in parsed.rules] == [days]
    assert parsed.rules[0][1:] == (60, 300)


def test_parse_several_rules_as_text_or_list():
    text = window.parse("Sat-Sun 01:00-05:00;  Mon,Wed   22:00-02:00", UTC)
    listed = window.parse(["Sat-Sun 01:00-05:00", "Mon,Wed 22:00-02:00"], UTC)
    assert text.rules == listed.rules
    assert text.spec == "Sat-Sun 01:00-05:00; Mon,Wed 22:00-02:00"
    assert text.describe() == "Sat-Sun 01:00-05:00; Mon,Wed 22:00-02:00 (UTC)"


def test_whole_day_ends_at_24():
    parsed = window.parse("Sat 00:00-24:00", UTC)
    assert parsed.rules[0][1:] == (0, 1440)
    assert parsed.is_open(utc(*SAT, 23, 59, 59)) and not parsed.is_open(utc(*SUN, 0, 0))


@pytest.mark.parametrize(
    "spec, names",
    [
        ("", ["empty rule"]),
        ("Sat 01:00-05:00;", ["empty rule"]),
        ("Sat-Sun", ["no time range"]),
        ("Sat-Sun 0100-0500", ["'0100' is not a time"]),
        ("Sat 01:00", ["'01:00' is not a time range"]),
        ("Sat-Sun 1-5", ["'1' is not a time"]),
        ("Sut 01:00-05:00", ["unknown day 'Sut'"]),
        ("Mon,,Wed 01:00-02:00", ["empty day in 'Mon,,Wed'"]),
        ("Sat 25:00-26:00", ["'25:00' is not a time of day"]),
        ("Sat 01:60-02:00", ["'01:60' is not a time of day"]),
        ("Sat 24:00-01:00", ["'24:00' is not a time of day"]),
        ("Sat 01:00-24:30", ["'24:30' is not a time of day"]),
        ("Sat 01:00-01:00", ["opens and closes at the same time", "00:00-24:00"]),
        ("*; Sat 01:00-02:00", ["cannot be combined"]),
        ("Sat-Sun 01:00-05:00, Mon 22:00-23:00", ["separate several rules with ';'"]),
        (42, ["not 42"]),
        (["Sat 01:00-05:00", 3], ["not ['Sat 01:00-05:00', 3]"]),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, names):
    with pytest.raises(window.WindowError) as exc:
        window.parse(spec, UTC)
    for name in names:
        assert name in str(exc.value)


@pytest.mark.parametrize("tz", ["Europe/Osl", "", "../../etc/passwd", 7])
def test_bad_time_zone(tz):
    with pytest.raises(window.WindowError, match="time zone"):
        window.parse("Sat 01:00-05:00", tz)


def test_window_error_is_a_value_error():
    assert issubclass(window.WindowError, ValueError)


# -- open and closed --------------------------------------------------------------


def test_weekend_nights():
    sat_sun = window.parse("Sat-Sun 01:00-05:00", UTC)
    assert not sat_sun.is_open(utc(*SAT, 0, 59, 59))
    assert sat_sun.is_open(utc(*SAT, 1, 0))
    assert sat_sun.is_open(utc(*SAT, 4, 59, 59))
    assert not sat_sun.is_open(utc(*SAT, 5, 0))
    assert sat_sun.is_open(utc(*SUN, 3, 0))
    assert not sat_sun.is_open(utc(*MON, 3, 0))


def test_a_window_across_midnight_belongs_to_the_day_it_opens():
    nights = window.parse("Mon,Wed 22:00-02:00", UTC)
    assert nights.is_open(utc(*MON, 23, 0))
    assert nights.is_open(utc(*TUE, 1, 59))
    assert not nights.is_open(utc(*TUE, 2, 0))
    assert not nights.is_open(utc(*TUE, 23, 0))
    assert nights.is_open(utc(2026, 12, 9, 22, 0)) and nights.is_open(utc(2026, 12, 10, 1, 0))
    assert not nights.is_open(utc(*MON, 1, 0))  # Sunday night is not in it
    assert nights.closes_at(utc(*MON, 23, 0)) == utc(*TUE, 2, 0)


def test_touching_rules_make_one_period():
    weekend = window.parse("Sat 00:00-24:00; Sun 00:00-24:00", UTC)
    assert weekend.closes_at(utc(*SAT, 10, 0)) == utc(*MON, 0, 0)
    nights = window.parse("daily 22:00-02:00; daily 02:00-04:00", UTC)
    assert nights.closes_at(utc(*SAT, 23, 0)) == utc(*SUN, 4, 0)


def test_fits_only_when_the_node_is_back_before_the_close():
    sat = window.parse("Sat 01:00-05:00", UTC)
    four = utc(*SAT, 4, 0)
    assert sat.fits(four, 3600)
    assert not sat.fits(four, 3601)
    assert not sat.fits(utc(*SAT, 0, 30), 60)  # not open yet
    assert sat.closes_at(utc(*SAT, 0, 30)) is None


def test_next_open_and_next_start():
    sat_sun = window.parse("Sat-Sun 01:00-05:00", UTC)
    friday = utc(2026, 12, 4, 12, 0)
    assert sat_sun.next_open(friday) == utc(*SAT, 1, 0)
    assert sat_sun.next_open(utc(*SAT, 2, 0)) == utc(*SAT, 2, 0)
    assert sat_sun.next_open(utc(*SUN, 5, 0)) == utc(2026, 12, 12, 1, 0)
    # Half an hour left on Saturday: a node of an hour waits for Sunday.
    assert sat_sun.next_start(utc(*SAT, 4, 30), 3600) == utc(*SUN, 1, 0)
    assert sat_sun.next_start(utc(*SAT, 2, 0), 3600) == utc(*SAT, 2, 0)
    # No opening is five hours long.
    assert sat_sun.next_start(friday, 5 * 3600) is None


def test_wait_reason():
    sat_sun = window.parse("Sat-Sun 01:00-05:00", UTC)
    assert sat_sun.wait_reason(utc(*SAT, 2, 0), 600) is None
    outside = sat_sun.wait_reason(utc(2026, 12, 4, 12, 0), 600)
    assert outside == (
        "outside the maintenance window Sat-Sun 01:00-05:00 (UTC); goes on by itself at Sat 2026-12-05 01:00 UTC"
    )
    closing = sat_sun.wait_reason(utc(*SAT, 4, 30), 3600, what="node3")
    assert closing == (
        "the maintenance window Sat-Sun 01:00-05:00 (UTC) closes at Sat 2026-12-05 05:00 UTC, "
        "before node3 (expected 60 min) would be done; goes on by itself at Sun 2026-12-06 01:00 UTC"
    )
    never = sat_sun.wait_reason(utc(*SAT, 2, 0), 5 * 3600)
    assert "no opening in the next two weeks is long enough" in never and "5 h 00 min" in never


def test_always():
    always = window.parse("*", OSLO)
    now = utc(*SAT, 12, 0)
    assert always.always and always.is_open(now) and always.fits(now, 7 * 86400)
    assert always.closes_at(now) == math.inf
    assert always.next_open(now) == now and always.next_start(now, 10**6) == now
    assert always.wait_reason(now, 10**6) is None
    assert always.describe() == "always"


# -- time zones -----------------------------------------------------------------------


def test_given_zone():
    oslo = window.parse("Sat 01:00-05:00", OSLO)
    # 00:30 UTC is 01:30 in Oslo in winter (UTC+1).
    assert oslo.is_open(utc(*SAT, 0, 30))
    assert not oslo.is_open(utc(*SAT, 4, 30))
    assert oslo.closes_at(utc(*SAT, 0, 30)) == utc(*SAT, 4, 0)
    assert oslo.describe() == "Sat 01:00-05:00 (Europe/Oslo)"
    assert oslo.format(utc(*SAT, 0, 30)) == "Sat 2026-12-05 01:30 CET"
    same = window.parse("Sat 01:00-05:00", zoneinfo.ZoneInfo(OSLO))
    assert same.periods(utc(*SAT, 0, 30)) == oslo.periods(utc(*SAT, 0, 30))


def test_local_zone_is_the_masters(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    tokyo = window.parse("Sat 01:00-05:00")
    assert tokyo.is_open(at("Asia/Tokyo", *SAT, 1, 30))
    assert tokyo.closes_at(at("Asia/Tokyo", *SAT, 1, 30)) == utc(2026, 12, 4, 20, 0)


def test_local_zone_without_tz_is_a_real_zone(monkeypatch):
    monkeypatch.delenv("TZ", raising=False)
    zone = window.local_zone()
    assert datetime.datetime.fromtimestamp(0, zone).utcoffset() is not None


# 2026-03-29: in Oslo the clocks go from 02:00 CET (UTC+1) to 03:00 CEST (UTC+2) at 01:00 UTC.
# 2026-10-25: they go back from 03:00 CEST to 02:00 CET at 01:00 UTC; 02:00-03:00 happens twice.


def test_dst_spring_forward_night_is_shorter():
    night = window.parse("Sun 01:00-05:00", OSLO)
    opens, closes = next(p for p in night.periods(utc(2026, 3, 28, 12, 0)) if p[0] > utc(2026, 3, 28, 12, 0))
    assert (opens, closes) == (utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 3, 0))
    assert closes - opens == 3 * 3600
    # 04:30 CEST: half an hour left, not one and a half as a clock without DST would say.
    half_past_four = utc(2026, 3, 29, 2, 30)
    assert night.fits(half_past_four, 1800) and not night.fits(half_past_four, 1801)


def test_dst_bounds_in_the_skipped_hour_are_the_jump():
    starts_skipped = window.parse("Sun 02:30-04:00", OSLO)
    assert starts_skipped.next_open(utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 0)
    assert not starts_skipped.is_open(utc(2026, 3, 29, 0, 59, 59))
    assert starts_skipped.closes_at(utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 29, 2, 0)
    ends_skipped = window.parse("Sun 00:00-02:30", OSLO)
    assert ends_skipped.is_open(utc(2026, 3, 29, 0, 59, 59))
    assert not ends_skipped.is_open(utc(2026, 3, 29, 1, 0))
    assert ends_skipped.closes_at(utc(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 1, 0)


def test_dst_fall_back_night_is_longer():
    night = window.parse("Sun 01:00-05:00", OSLO)
    saturday = utc(2026, 10, 24, 12, 0)
    opens, closes = next(p for p in night.periods(saturday) if p[0] > saturday)
    assert (opens, closes) == (utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 4, 0))
    assert night.fits(utc(2026, 10, 25, 0, 0), 4 * 3600)  # 02:00 CEST: four real hours left


def test_dst_bounds_in_the_repeated_hour():
    starts_repeated = window.parse("Sun 02:30-04:00", OSLO)
    # Opens at the first 02:30 (CEST, 00:30 UTC) and stays open through the repeated hour
    # until 04:00 CET (03:00 UTC): no gap when the wall clock goes back to 02:00.
    assert starts_repeated.next_open(utc(2026, 10, 24, 12, 0)) == utc(2026, 10, 25, 0, 30)
    assert starts_repeated.is_open(utc(2026, 10, 25, 1, 15))  # 02:15 CET, the second time round
    assert starts_repeated.closes_at(utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 25, 3, 0)
    ends_repeated = window.parse("Sun 01:00-02:30", OSLO)
    assert ends_repeated.closes_at(utc(2026, 10, 24, 23, 30)) == utc(2026, 10, 25, 1, 30)  # the second 02:30


WINDOWS = ["Sat-Sun 01:00-05:00", "Mon,Wed 22:00-02:00", "daily 02:30-03:30", "Fri-Mon 00:00-24:00; Wed 12:00-13:00"]


@settings(max_examples=150, deadline=None)
@given(
    spec=st.sampled_from(WINDOWS),
    zone=st.sampled_from([UTC, OSLO, "America/New_York"]),
    # Whole milliseconds: a float a hair before midnight would be rounded over it by datetime (microseconds).
    now=st.integers(int(utc(2026, 1, 1)) * 1000, int(utc(2027, 1, 1)) * 1000).map(lambda ms: ms / 1000),
    expected=st.floats(0, 6 * 3600),
)
def test_properties(spec, zone, now, expected):
    win = window.parse(spec, zone)
    closes = win.closes_at(now)
    assert win.is_open(now) == (closes is not None)
    if closes is not None:
        assert win.is_open(closes - 0.5) and not win.is_open(closes)
        assert win.next_open(now) == now
    else:
        opens = win.next_open(now)
        assert opens > now and win.is_open(opens) and not win.is_open(opens - 0.5)
    start = win.next_start(now, expected)
    if start is not None:
        assert start >= now and win.fits(start, expected)
        assert win.fits(now, expected) == (start == now)
    # Open exactly when the wall clock is inside a rule (away from the hours DST shifts).
    wall = datetime.datetime.fromtimestamp(now, zoneinfo.ZoneInfo(zone))
    if not (2 <= wall.hour < 4 and wall.month in (3, 10, 11)):
        minute = wall.hour * 60 + wall.minute + wall.second / 60 + wall.microsecond / 6e7
        inside = any(
            (wall.weekday() in days and start_m <= minute < (end if end > start_m else 1440))
            or (end <= start_m and (wall.weekday() - 1) % 7 in days and minute < end)
            for days, start_m, end in win.rules
        )
        assert win.is_open(now) == inside


# -- the expected in-flight time ------------------------------------------------------


GRAINS = {"cpuarch": "x86_64", "os": "Rocky", "osrelease": "9.3", "kernelrelease": "5.14.0"}


def _record(node_timeout=600):
    facts = {
        f"n{i}": {
            "decision": {"action": "install", "reason": "test", "installed": "5.25.2"},
            "node_state": {"active": True, "reasons": []},
            "installed": "5.25.2",
            "grains": GRAINS,
            "workdir": "/w",
        }
        for i in range(1, 5)
    }
    options = {
        "reboot": False,
        "enforce": False,
        "applications": [],
        "node_timeout": node_timeout,
        "compat": None,
        "canary": 0,
        "frontend": None,
        "build": True,
    }
    return rollout.new_record("r1", "default", "5.26.0", "salt://x.sh", facts, options, 1000.0)


def _update(record, minion, begin, end, fail=False):
    rollout.mark_phase(record, minion, rollout.STOPPING, begin)
    if fail:
        rollout.mark_failed(record, minion, "not active", end)
    else:
        rollout.mark_active(record, minion, "5.26.0", end)


def test_expected_seconds_is_node_timeout_before_any_node():
    assert window.expected_seconds(_record(600)) == 600


def test_expected_seconds_from_the_nodes_done():
    record = _record(600)
    _update(record, "n1", 1000, 1100)
    _update(record, "n2", 1110, 1270)
    assert window.expected_seconds(record) == 160 * window.MARGIN
    assert window.expected_seconds(record, margin=1) == 160
    _update(record, "n3", 1300, 1800, fail=True)  # a failure is no measure of a good update
    assert window.expected_seconds(record) == 160 * window.MARGIN


def test_expected_seconds_at_most_node_timeout():
    record = _record(200)
    _update(record, "n1", 1000, 1190)
    assert window.expected_seconds(record) == 200


# -- long waits say so ----------------------------------------------------------------------


NODE_STATE = {
    "state": "inactive",
    "active": False,
    "installed": "5.26.0",
    "running": "5.26.0",
    "services": {"dis_kosif": True, "dis_ix": True, "dis_irm": False},
    "reasons": ["services not running: IRM", "dis_diag: ERROR: Links not active: no link partner detected on link 0."],
}


def test_should_say_before_any_node_is_done():
    record = _record(1800)
    rollout.mark_phase(record, "n1", rollout.STOPPING, 1000)
    assert not window.should_say(record, "n1", 1000 + window.SAY_EVERY - 1)
    assert window.should_say(record, "n1", 1000 + window.SAY_EVERY)
    assert not window.should_say(record, "n1", 1045, said_at=1030)
    assert window.should_say(record, "n1", 1060, said_at=1030)
    assert not window.should_say(record, "n2", 5000)  # not in flight


def test_should_say_every_progress_every_seconds_when_the_operator_sets_it():
    record = _record(1800)
    record["options"]["progress_every"] = 5.0
    rollout.mark_phase(record, "n1", rollout.STOPPING, 1000)
    assert not window.should_say(record, "n1", 1004.9)
    assert window.should_say(record, "n1", 1005)
    assert not window.should_say(record, "n1", 1009, said_at=1005)
    assert window.should_say(record, "n1", 1010, said_at=1005)


def test_should_say_once_longer_than_the_nodes_before():
    record = _record(21)
    _update(record, "n1", 1000, 1006)  # 6 s: the next is expected in 9 s
    rollout.mark_phase(record, "n2", rollout.STOPPING, 1010)
    assert not window.should_say(record, "n2", 1018.9)
    assert window.should_say(record, "n2", 1019)


def test_waiting_note_says_how_long_and_what_the_node_says():
    record = _record(1800)
    _update(record, "n1", 1000, 1040)
    rollout.mark_phase(record, "n2", rollout.STOPPING, 1050)
    rollout.mark_phase(record, "n2", rollout.WAITING, 1055)
    note = window.waiting_note(record, "n2", 1050 + 95, NODE_STATE)
    assert note == (
        "n2: waiting for 95 s of the 30 min allowed (node_timeout); the nodes done so far took up to 40 s; "
        "the node says: inactive, installed 5.26.0, running 5.26.0; services not running: dis_irm; "
        "dis_diag: ERROR: Links not active: no link partner detected on link 0."
    )
    assert window.waiting_note(record, "n2", 1150, None).endswith("; the node did not answer (rebooting?)")
    assert window.waiting_note(record, "n2", 1150, "Minion did not return").endswith(
        "; asking the node failed: Minion did not return"
    )
    first = _record(600)
    rollout.mark_phase(first, "n1", rollout.INSTALLING, 1000)
    assert window.waiting_note(first, "n1", 1030, None).startswith(
        "n1: installing for 30 s of the 10 min allowed (node_timeout); the node did not answer"
    )
