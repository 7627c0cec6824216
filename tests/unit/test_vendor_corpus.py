"""The corpus of vendor output: every verbatim sample of expressware-facts.md, and the variants of the same shapes.

Each sample names where it comes from (``§3.3`` = facts section 3.3, ``§10`` = the simplified interface,
``variant`` = a plausible form of the same shape that an implementer writing from the same documents
could print). The samples are copied in literally, padding included; a ``…`` is the cut-off of the source.
A sample's expected parse is beside it: the parser must read it so, or (``UNREADABLE``) report the line.
"""

import pytest

from tests.shared_code import load

vendor = load("expressware_vendor")

# ---------------------------------------------------------------------------
# dis_services status, one line at a time: (source, line, (key, running, version, pid))
# ---------------------------------------------------------------------------

STATUS_LINES = [
    # §3.3, verbatim (DX 3.6 guide [S7]): `service dis_irm status` and `dis_services status`.
    ("§3.3", "Dolphin IRM 3.3.0 ( November 13th 2007 ) is running.", ("irm", True, "3.3.0", None)),
    ("§3.3", "Dolphin DX 3.3.0 ( November 13th 2007 ) is running.", ("adapter", True, "3.3.0", None)),
    ("§3.3", "Dolphin Node Manager is running (pid 3172).", ("nodemgr", True, None, 3172)),
    ("§3.3", "Dolphin SISCI 3.3.0 ( November 13th 2007 ) is running.", ("sisci", True, "3.3.0", None)),
    (
        "§3.3",
        'Dolphin SuperSockets 3.3.0 "St.Martin", Nov 7th 2007 (built Nov 14 200…',
        ("supersockets", True, "3.3.0", None),
    ),
    # §3.3 / §5.2 [V-para]: how the 5.x driver names itself (a banner without a state).
    ("§3.3", "Dolphin IRM (GX) 5.25.2", ("irm", True, "5.25.2", None)),
    ("§3.3", "Dolphin IRM (GX) 5.26.0-d", ("irm", True, "5.26.0-d", None)),
    # §5.2 [V]: an old driver's banner in a kernel log.
    ("§5.2", "Dolphin IRM 1.10.2 ( Beta 1 2000-12-18 )", ("irm", True, "1.10.2", None)),
    # §10: the simple form, and the vendor forms it names.
    ("§10", "Dolphin KOSIF 5.25.2 is running.", ("kosif", True, "5.25.2", None)),
    ("§10", "Dolphin PX 5.26.0-d is running.", ("adapter", True, "5.26.0-d", None)),
    ("§10", "Dolphin Node Manager is running (pid 17).", ("nodemgr", True, None, 17)),
    ("§10", "Dolphin SuperSockets is stopped.", ("supersockets", False, None, None)),
    ("§10", "Dolphin Node Manager is stopped.", ("nodemgr", False, None, None)),
    ("§10", "Dolphin IRM 5.25.2 ( April 24th 2026 ) is running.", ("irm", True, "5.25.2", None)),
    (
        "§10",
        'Dolphin SuperSockets 5.25.2 "St.Martin", Apr 24th 2026 is running.',
        ("supersockets", True, "5.25.2", None),
    ),
    # The line of issue 14, from an independent simulator.
    ("issue 14", "Dolphin KOSIF 5.25.2 ( April 24th 2026 ) is running.", ("kosif", True, "5.25.2", None)),
    # Variants: a build date in parentheses with any spacing.
    ("variant", "Dolphin IRM 5.25.2 (April 24th 2026) is running.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.25.2 (  April 24th 2026  ) is running.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.25.2(April 24th 2026)is running.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.25.2 ( 2026-04-24 ) is running.", ("irm", True, "5.25.2", None)),
    # ... a qualifier between name and version, with a date and a build suffix.
    ("variant", "Dolphin IRM (GX) 5.25.2 is running.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM (GX) 5.26.0-d ( April 24th 2026 ) is running.", ("irm", True, "5.26.0-d", None)),
    ("variant", "Dolphin PX (GX) 5.25.2 ( April 24th 2026 ) is running.", ("adapter", True, "5.25.2", None)),
    ("variant", "Dolphin IRM GX 5.25.2 is running.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin MX 5.26.0-d (built Apr 24 2026 12:00:01) is running.", ("adapter", True, "5.26.0-d", None)),
    # ... a quoted codename with a date, and a trailing build note.
    (
        "variant",
        'Dolphin SuperSockets 5.25.2 "St.Martin", Apr 24th 2026 (built Apr 24 2026 on builder7) is running.',
        ("supersockets", True, "5.25.2", None),
    ),
    (
        "variant",
        'Dolphin SuperSockets 5.26.0-d "St.Martin", Apr 24th 2026 is running.',
        ("supersockets", True, "5.26.0-d", None),
    ),
    (
        "variant",
        'Dolphin SuperSockets "St.Martin" 5.25.2, Apr 24th 2026 is running.',
        ("supersockets", True, "5.25.2", None),
    ),
    (
        "variant",
        'Dolphin SuperSockets 5.25.2 "St.Martin", Apr 24th 2026 (built Apr 2…',
        ("supersockets", True, "5.25.2", None),
    ),
    # ... extra spaces and tabs, no full stop, "..." ending, version words.
    ("variant", "Dolphin   IRM\t5.25.2   ( April 24th 2026 )\tis running.", ("irm", True, "5.25.2", None)),
    ("variant", "  Dolphin IRM 5.25.2 is running", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.25.2 is running...", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM version 5.25.2 is running.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM v5.25.2 is running.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM driver 5.25.2 is running.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.25.2: running", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.25.2 is active.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.25.2 is loaded.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.25.2 is running, 0 links down.", ("irm", True, "5.25.2", None)),  # "is" says it
    # ... a version suffix: "d" after the version with or without "-", a package release (GA).
    ("variant", "Dolphin IRM 5.26.0d is running.", ("irm", True, "5.26.0-d", None)),
    ("variant", "Dolphin IRM 5.26.0-rc1 is running.", ("irm", True, "5.26.0-rc1", None)),
    ("variant", "Dolphin IRM 5.25.2-1 is running.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.26.0-d.el9 is running.", ("irm", True, "5.26.0-d", None)),
    # ... the release tag of §5.2 where the version stands, or as a note after it.
    ("variant", "Dolphin IRM DIS_RELEASE_5_25_2_APR_24_2026 is running.", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM (GX) DIS_RELEASE_5_26_0_D_SEP_13_2026 is running.", ("irm", True, "5.26.0-d", None)),
    ("variant", "Dolphin IRM (GX) 5.25.2 DIS_RELEASE_5_25_2_APR_24_2026 is running.", ("irm", True, "5.25.2", None)),
    # ... a cut-off line end.
    ("variant", "Dolphin IRM 5.25.2 ( April 24th 2026 ) is runn", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.25.2 ( April 24th 2026 ) is running…", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.25.2 ( April 24th 20…", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM 5.25.2 ( April 24th 2026 )", ("irm", True, "5.25.2", None)),
    # ... [  OK  ] / [FAILED] columns.
    ("variant", "Dolphin IRM 5.25.2                                         [  OK  ]", ("irm", True, "5.25.2", None)),
    (
        "variant",
        "Dolphin IRM 5.25.2 ( April 24th 2026 )                     [ RUNNING ]",
        ("irm", True, "5.25.2", None),
    ),
    ("variant", "Dolphin IRM                                                [FAILED]", ("irm", False, None, None)),
    # ... the colour and column codes of Red Hat's initscripts, printed even into a pipe.
    ("variant", "Dolphin IRM 5.25.2\x1b[60G[\x1b[0;32m  OK  \x1b[0;39m]", ("irm", True, "5.25.2", None)),
    ("variant", "Dolphin IRM                                                [ STOPPED ]", ("irm", False, None, None)),
    # ... stopped wordings (a stopped service runs no version, whatever it prints).
    ("variant", "Dolphin IRM is not running.", ("irm", False, None, None)),
    ("variant", "Dolphin IRM is dead", ("irm", False, None, None)),
    ("variant", "Dolphin IRM is dead but pid file exists", ("irm", False, None, None)),
    ("variant", "Dolphin IRM is not loaded.", ("irm", False, None, None)),
    ("variant", "Dolphin IRM is inactive", ("irm", False, None, None)),
    ("variant", "Dolphin IRM stopped", ("irm", False, None, None)),
    ("variant", "Dolphin IRM is not running, was up 3 days", ("irm", False, None, None)),
    ("variant", "Dolphin IRM 5.25.2 ( April 24th 2026 ) is stopped.", ("irm", False, None, None)),
    ("variant", "Dolphin IRM (GX) 5.25.2 is not running.", ("irm", False, None, None)),
    ("variant", "Dolphin Node Manager is not running.", ("nodemgr", False, None, None)),
    # ... the Node Manager without version, with its pid where it stands; or with a version.
    ("variant", "Dolphin Node Manager (pid 3172) is running.", ("nodemgr", True, None, 3172)),
    ("variant", "Dolphin Node Manager is running (pid: 3172)", ("nodemgr", True, None, 3172)),
    ("variant", "Dolphin Node Manager is running, pid 3172.", ("nodemgr", True, None, 3172)),
    (
        "variant",
        "Dolphin Node Manager 5.25.2 ( April 24th 2026 ) is running (pid 3172).",
        ("nodemgr", True, "5.25.2", 3172),
    ),
    ("variant", "Dolphin Node Manager is running.", ("nodemgr", True, None, None)),
    # ... the initscripts form with the unit's name (§3.4), and 5.x product names.
    ("variant", "dis_nodemgr (pid 3172) is running...", ("nodemgr", True, None, 3172)),
    ("variant", "dis_irm is stopped", ("irm", False, None, None)),
    ("variant", "dis_irm dead but subsys locked", ("irm", False, None, None)),
    ("variant", "Dolphin IX 5.25.2 ( April 24th 2026 ) is running.", ("adapter", True, "5.25.2", None)),
    ("variant", "Dolphin MX 5.25.2 is running.", ("adapter", True, "5.25.2", None)),
    # ... the Network Manager of a Cluster Management Node (§3.4).
    ("variant", "Dolphin Network Manager is running (pid 4100).", ("networkmgr", True, None, 4100)),
    # ... SmartIO where Dolphin-SmartIO is installed (§5.1).
    ("variant", "Dolphin SmartIO 5.25.2 ( April 24th 2026 ) is running.", ("smartio", True, "5.25.2", None)),
]


@pytest.mark.parametrize(
    "source, line, expected", STATUS_LINES, ids=[f"{s}:{text[:60]}" for s, text, _ in STATUS_LINES]
)
def test_status_line(source, line, expected):
    key, entry = vendor.parse_status_line(line)
    assert (key, entry["running"], entry["version"], entry["pid"]) == expected, (source, line, entry)


# Lines that cannot be read without guessing: reported with the line itself.
UNREADABLE_STATUS = [
    "Dolphin IRM 5.25 is running.",  # not MAJOR.MINOR.PATCH
    "Dolphin IRM 5.25.2.1 is running.",  # a fourth number: not cut to 5.25.2
    "Dolphin IRM 5.25.2… is running.",  # a version cut off (5.25.2x?)
    "Dolphin IRM 05.25.2 is running.",  # a second spelling of 5.25.2
    "Dolphin IRM St.Martin 5.25.2 is running.",  # an x.y.z after an unquoted word: which is the version?
    "Dolphin IRM 5.25.2 is unknown.",  # a state that is not one
    "Dolphin IRM 5.25.2 is",  # cut off before the state
    "Dolphin IRM",  # neither version nor state
    "Dolphin IRM ( April 24th 2026 )",
    "Dolphin Foo 5.25.2 is running.",  # not a Dolphin service
    "Dolphin IRMX 5.25.2 is running.",
    "IRM 5.25.2 is running.",
    "dis_services: command not found",
    "Dolphin IRM 5.25.2 is runnning.",
]


@pytest.mark.parametrize("line", UNREADABLE_STATUS)
def test_status_line_unreadable_names_the_line(line):
    with pytest.raises(vendor.VendorOutputError) as caught:
        vendor.parse_status_line(line)
    assert repr(line) in str(caught.value)


def test_a_year_or_a_codename_is_never_the_version():
    # The version is the token after the name; nothing later is read as one.
    for line in (
        'Dolphin SuperSockets 5.25.2 "St.Martin 6.0.0", Apr 24th 2026 (built 7.7.7) is running.',
        "Dolphin IRM 5.25.2 ( 2026.4.24 ) is running.",
        'Dolphin SuperSockets "6.1.0" 5.25.2 is running.',
        "Dolphin IRM (GX 6.0.0) 5.25.2 is running.",
    ):
        assert vendor.parse_status_line(line)[1]["version"] == "5.25.2", line
    # No version where it stands, and none elsewhere outside notes: no version (not the year).
    assert vendor.parse_status_line("Dolphin IRM ( April 24th 2026 ) is running.")[1]["version"] is None
    assert vendor.parse_status_line('Dolphin SuperSockets "St.Martin", Apr 24th 2026 is running.')[1]["version"] is None


# ---------------------------------------------------------------------------
# dis_services status, whole outputs
# ---------------------------------------------------------------------------

#: §3.3 verbatim: `dis_services status` of a 3.x node (DX adapter, no KOSIF layer), its last line cut off.
STATUS_3X = """\
Dolphin DX 3.3.0 ( November 13th 2007 ) is running.
Dolphin IRM 3.3.0 ( November 13th 2007 ) is running.
Dolphin Node Manager is running (pid 3172).
Dolphin SISCI 3.3.0 ( November 13th 2007 ) is running.
Dolphin SuperSockets 3.3.0 "St.Martin", Nov 7th 2007 (built Nov 14 200…
"""

#: §3.3 [I] + issue 14: the same shape on 5.x, a KOSIF line first and the (GX) qualifier.
STATUS_5X_DATED = """\
Dolphin KOSIF 5.25.2 ( April 24th 2026 ) is running.
Dolphin PX (GX) 5.25.2 ( April 24th 2026 ) is running.
Dolphin IRM (GX) 5.25.2 ( April 24th 2026 ) is running.
Dolphin Node Manager is running (pid 3172).
Dolphin SISCI 5.25.2 ( April 24th 2026 ) is running.
Dolphin SuperSockets 5.25.2 "St.Martin", Apr 24th 2026 (built Apr 24 2026 12:00:01) is running.
"""

#: §10: the simple form.
STATUS_SIMPLE = """\
Dolphin KOSIF 5.26.0-d is running.
Dolphin IX 5.26.0-d is running.
Dolphin IRM 5.26.0-d is running.
Dolphin Node Manager is running (pid 3172).
Dolphin SISCI 5.26.0-d is running.
Dolphin SuperSockets is stopped.
"""

#: variant: stopped in several wordings, tabs, the lines in stop order, the frontend's Network Manager.
STATUS_VARIANT_STOPPED = """\
Dolphin SuperSockets is not running.
Dolphin SISCI\tis stopped.
dis_nodemgr dead but pid file exists
Dolphin IRM (GX) 5.25.2 is not loaded.
Dolphin MX is dead
Dolphin KOSIF is inactive
Dolphin SmartIO is stopped.
Dolphin Network Manager is running (pid 4100).
"""


@pytest.mark.parametrize(
    "source, text, version, running",
    [
        (
            "§3.3",
            STATUS_3X,
            "3.3.0",
            {"adapter": True, "irm": True, "nodemgr": True, "sisci": True, "supersockets": True},
        ),
        (
            "§3.3+issue 14",
            STATUS_5X_DATED,
            "5.25.2",
            dict.fromkeys(["kosif", "adapter", "irm", "nodemgr", "sisci", "supersockets"], True),
        ),
        (
            "§10",
            STATUS_SIMPLE,
            "5.26.0-d",
            {"kosif": True, "adapter": True, "irm": True, "nodemgr": True, "sisci": True, "supersockets": False},
        ),
        (
            "variant",
            STATUS_VARIANT_STOPPED,
            None,
            {
                "kosif": False,
                "adapter": False,
                "irm": False,
                "nodemgr": False,
                "sisci": False,
                "supersockets": False,
                "smartio": False,
                "networkmgr": True,
            },
        ),
    ],
)
def test_status_output(source, text, version, running):
    services = vendor.parse_status(text)
    assert {key: entry["running"] for key, entry in services.items()} == running, source
    assert list(services) == [
        key
        for key in ("kosif", "adapter", "irm", "nodemgr", "sisci", "supersockets", "smartio", "networkmgr")
        if key in running
    ]
    assert vendor.running_version(services) == version


def test_status_5x_still_needs_kosif():
    # Only a 3.x adapter driver (DX, SCI) stands without KOSIF below it.
    with pytest.raises(vendor.VendorOutputError, match="did not report: kosif"):
        vendor.parse_status(STATUS_5X_DATED.split("\n", 1)[1])


# ---------------------------------------------------------------------------
# dis_services start/stop: (source, line, (key, action, ok))
# ---------------------------------------------------------------------------

ACTION_LINES = [
    # §1.1 / §3.1 verbatim (IX guide [S2]; padding of the PX/MX pages [S1]).
    ("§3.1", "Stopping Dolphin SuperSockets drivers                      [  OK  ]", ("supersockets", "stop", True)),
    ("§3.1", "Stopping Dolphin SISCI driver                              [  OK  ]", ("sisci", "stop", True)),
    ("§3.1", "Stopping Dolphin Node Manager                              [  OK  ]", ("nodemgr", "stop", True)),
    ("§3.1", "Stopping Dolphin IRM driver                                [  OK  ]", ("irm", "stop", True)),
    ("§3.1", "Stopping Dolphin IX driver                                 [  OK  ]", ("adapter", "stop", True)),
    ("§3.1", "Stopping Dolphin KOSIF driver                              [  OK  ]", ("kosif", "stop", True)),
    # §3.1: "On the IX page [S2] the whitespace is collapsed".
    ("§3.1", "Stopping Dolphin SuperSockets drivers [ OK ]", ("supersockets", "stop", True)),
    # §3.2 [I]: start in reverse order.
    ("§3.2", "Starting Dolphin KOSIF driver                              [  OK  ]", ("kosif", "start", True)),
    ("§3.2", "Starting Dolphin PX driver                                 [  OK  ]", ("adapter", "start", True)),
    ("§3.2", "Starting Dolphin SuperSockets drivers                      [  OK  ]", ("supersockets", "start", True)),
    # §3.1 [I] / §10: a failure in the same column.
    ("§10", "Stopping Dolphin IRM driver                                [FAILED]", ("irm", "stop", False)),
    ("§10", "Starting Dolphin MX driver                                 [FAILED]", ("adapter", "start", False)),
    # Variants: spacing of the mark, tabs, a banner on the line, the mark cut off, other init styles.
    ("variant", "Stopping Dolphin IRM driver\t\t[  OK  ]", ("irm", "stop", True)),
    ("variant", "Stopping Dolphin IRM driver [OK]", ("irm", "stop", True)),
    ("variant", "Stopping Dolphin IRM driver [ FAILED ]", ("irm", "stop", False)),
    ("variant", "Starting Dolphin IRM (GX) 5.25.2 ( April 24th 2026 )       [  OK  ]", ("irm", "start", True)),
    ("variant", "Starting Dolphin Node Manager (pid 3172)                   [  OK  ]", ("nodemgr", "start", True)),
    (
        "variant",
        'Starting Dolphin SuperSockets 5.25.2 "St.Martin", Apr 24th 2026 [  OK  ]',
        ("supersockets", "start", True),
    ),
    ("variant", "Stopping Dolphin IRM driver                                [  OK", ("irm", "stop", True)),
    ("variant", "[ ok ] Stopping Dolphin IRM driver...done.", ("irm", "stop", True)),
    ("variant", "[FAIL] Stopping Dolphin IRM driver... failed!", ("irm", "stop", False)),
    ("variant", "Stopping Dolphin IRM driver: done.", ("irm", "stop", True)),
    ("variant", "Stopping dis_irm:                                          [  OK  ]", ("irm", "stop", True)),
    ("variant", "Stopping Dolphin Network Manager                           [  OK  ]", ("networkmgr", "stop", True)),
    ("variant", "Stopping Dolphin DX driver                                 [  OK  ]", ("adapter", "stop", True)),
    ("variant", "Stopping Dolphin IRM driver\x1b[60G[\x1b[0;32m  OK  \x1b[0;39m]", ("irm", "stop", True)),
    ("variant", "Starting Dolphin IRM driver\x1b[60G[\x1b[0;31mFAILED\x1b[0;39m]", ("irm", "start", False)),
    ("variant", "Loading Dolphin KOSIF driver                               [  OK  ]", ("kosif", "start", True)),
    ("variant", "Unloading Dolphin KOSIF driver                             [  OK  ]", ("kosif", "stop", True)),
    ("variant", "Shutting down Dolphin Node Manager:                        [  OK  ]", ("nodemgr", "stop", True)),
]


@pytest.mark.parametrize(
    "source, line, expected", ACTION_LINES, ids=[f"{s}:{text[:50]}" for s, text, _ in ACTION_LINES]
)
def test_action_line(source, line, expected):
    (parsed,) = vendor.parse_action_output(line)
    assert (parsed["service"], parsed["action"], parsed["ok"]) == expected, (source, line, parsed)


def test_action_line_cut_before_its_mark_takes_the_exit_status():
    line = "Stopping Dolphin IRM driver                                ["
    assert vendor.parse_action_output(line)[0]["ok"] is None
    assert vendor.parse_action_output(line, retcode=0)[0]["ok"] is True
    assert vendor.parse_action_output(line, retcode=1)[0]["ok"] is False
    # A mark that is there wins over the exit status.
    assert vendor.parse_action_output("Stopping Dolphin IRM driver [FAILED]", retcode=0)[0]["ok"] is False


@pytest.mark.parametrize(
    "line",
    [
        "Stopping Dolphin Foo driver    [  OK  ]",
        "Stopping Dolphin SISCI driver [ MAYBE ]",
        "Unloading dis_irm.ko",
        "Stopping the world [  OK  ]",
    ],
)
def test_action_line_unreadable_names_the_line(line):
    with pytest.raises(vendor.VendorOutputError) as caught:
        vendor.parse_action_output(line)
    assert repr(line) in str(caught.value)


def test_action_output_with_status_banners_between():
    # An init script may print the driver's banner after starting it: understood, and the marks decide.
    text = (
        "Starting Dolphin IRM driver                                [  OK  ]\n"
        "Dolphin IRM 3.3.0 ( November 13th 2007 ) is running.\n"
        "Starting Dolphin Node Manager                              [FAILED]\n"
        "Dolphin Node Manager is not running.\n"
    )
    assert [(line["service"], line["ok"]) for line in vendor.parse_action_output(text)] == [
        ("irm", True),
        ("nodemgr", False),
    ]


def test_action_output_3x_order():
    # §3.1: "3.x order (no KOSIF/IX layer): SuperSockets, SISCI, Node Manager, IRM".
    text = "".join(
        f"{('Stopping Dolphin ' + label).ljust(59)}[  OK  ]\n"
        for label in ("SuperSockets drivers", "SISCI driver", "Node Manager", "IRM driver")
    )
    assert [line["service"] for line in vendor.parse_action_output(text)] == ["supersockets", "sisci", "nodemgr", "irm"]


# ---------------------------------------------------------------------------
# dis_diag
# ---------------------------------------------------------------------------

#: §4.3 / §5.2 [V-para]: the fields the support notes name, in a plausible layout (the exact one is unknown).
DIAG_PASSED = """\
dis_diag version: 5.25.2
Driver version: Dolphin IRM (GX) 5.25.2
ExpressWare release line shown by driver: DIS_RELEASE_5_25_2_APR_24_2026
Number of configured local adapters found: 1
Adapter 0 > Type: MXH930, Mode: NTB, Local NodeId: 4, Serial: 12345, BDF: 09:00.1, Topology type: Direct 2 nodes
PCIe upstream: x16 Gen4 (16 GT/s)
Link 0: State: ENABLED, Active: 1, Cable inserted: 1, x16 Gen4
Nodes detected in topology: 0004 and 0008
Node 4: Session valid
Node 8: Session valid
0 warnings and 0 errors
TEST RESULT: PASSED
"""

#: §5.2 [V-para]: the other node of the mixed-version stack; §4.3: the degraded cases.
DIAG_FAILED = """\
dis_diag 5.26.0
Driver version: Dolphin IRM (GX) 5.26.0-d
Nodes detected in topology: 0008
WARNING: dishosts.conf does not specify the local host
1 warnings and 1 errors
TEST RESULT: FAILED
"""


@pytest.mark.parametrize(
    "source, text, passed, versions",
    [
        ("§4.3+§5.2", DIAG_PASSED, True, ("5.25.2", "5.25.2", "5.25.2")),
        ("§5.2", DIAG_FAILED, False, ("5.26.0", "5.26.0-d", None)),
        ("§10", "Link 0: State: ENABLED, Active: 1\nTEST RESULT: PASSED\n", True, (None, None, None)),
        ("variant", "TEST RESULT: PASSED\n0 warnings and 0 errors\nElapsed time: 0.4 s\n", True, (None, None, None)),
        ("variant", "*** Test result : FAILED ***\n", False, (None, None, None)),
        (
            "variant",
            "dis_diag version 5.26.0-d\nDriver version: Dolphin IRM 5.26.0-d ( April 24th 2026 )\n"
            "TEST RESULT:\tPASSED (0 warnings and 0 errors)\n",
            True,
            ("5.26.0-d", "5.26.0-d", None),
        ),
        ("variant", "Driver version: Dolphin IRM (GX) 5.2…\nTEST RESULT: PASSED\n", True, (None, None, None)),
    ],
)
def test_diag(source, text, passed, versions):
    parsed = vendor.parse_diag(text)
    assert parsed["passed"] is passed, source
    assert (parsed["tool_version"], parsed["driver_version"], parsed["release_version"]) == versions, source


# ---------------------------------------------------------------------------
# rpm: (source, output of `rpm -qa --queryformat '%{NAME} %{VERSION}-%{RELEASE}\n' 'Dolphin-*'`, packages)
# ---------------------------------------------------------------------------

RPM_OUTPUTS = [
    # §5.1 [V]: the 5.x package names (MX guide); §10: NAME VERSION-RELEASE, 5.26.0-d a snapshot.
    (
        "§5.1+§10",
        "Dolphin-MX 5.25.2-1\nDolphin-SISCI 5.25.2-1\nDolphin-SuperSockets 5.25.2-1\n"
        "Dolphin-SmartIO 5.25.2-1\nDolphin-NetworkHosts 5.25.2-1\nDolphin-NetworkManager 5.25.2-1\n",
        {
            "Dolphin-MX": "5.25.2",
            "Dolphin-SISCI": "5.25.2",
            "Dolphin-SuperSockets": "5.25.2",
            "Dolphin-SmartIO": "5.25.2",
            "Dolphin-NetworkHosts": "5.25.2",
            "Dolphin-NetworkManager": "5.25.2",
        },
    ),
    ("§10", "Dolphin-PX 5.26.0-d\n", {"Dolphin-PX": "5.26.0-d"}),
    # §5.1 [V]: the 3.x names.
    (
        "§5.1",
        "Dolphin-SCI 3.3.0-1\nDolphin-NetworkAdmin 3.3.0-1\n",
        {"Dolphin-SCI": "3.3.0", "Dolphin-NetworkAdmin": "3.3.0"},
    ),
    # Variants: distribution tags, the snapshot letter in either field, tabs, rpm's default format.
    (
        "variant",
        "Dolphin-PX 5.25.2-1.el9\nDolphin-SISCI\t5.25.2-3.el9_2\n",
        {"Dolphin-PX": "5.25.2", "Dolphin-SISCI": "5.25.2"},
    ),
    (
        "variant",
        "Dolphin-PX 5.26.0-d.el9\nDolphin-SISCI 5.26.0-0.d\n"
        "Dolphin-SuperSockets 5.26.0~d-1\nDolphin-SmartIO 5.26.0d-1\n",
        dict.fromkeys(["Dolphin-PX", "Dolphin-SISCI", "Dolphin-SuperSockets", "Dolphin-SmartIO"], "5.26.0-d"),
    ),
    (
        "variant",
        "Dolphin-PX-5.25.2-1.x86_64\nDolphin-SuperSockets-5.26.0-d.el9.aarch64\n",
        {"Dolphin-PX": "5.25.2", "Dolphin-SuperSockets": "5.26.0-d"},
    ),
]


@pytest.mark.parametrize("source, text, packages", RPM_OUTPUTS, ids=[s for s, _, _ in RPM_OUTPUTS])
def test_rpm_output(source, text, packages):
    assert vendor.parse_rpm_packages(text) == packages, source


@pytest.mark.parametrize(
    "line",
    [
        "Dolphin-PX 5.26-1",
        "Dolphin-PX 5.26.0.1-1",
        "Dolphin-PX 5.26.0d-e",
        "Dolphin-PX 5.26.0-d.rc1",
        "error: rpmdb open failed",
        "Dolphin-PX",
    ],
)
def test_rpm_output_unreadable_names_the_line(line):
    with pytest.raises(vendor.VendorOutputError) as caught:
        vendor.parse_rpm_packages(line + "\n")
    assert repr(line) in str(caught.value)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Dolphin-PX-5.26.0-1.x86_64.rpm", ("Dolphin-PX", "5.26.0", "x86_64")),
        ("Dolphin-SuperSockets-5.26.0-d.el9.x86_64.rpm", ("Dolphin-SuperSockets", "5.26.0-d", "x86_64")),
        ("Dolphin-SISCI-5.26.0~d-1.aarch64.rpm", ("Dolphin-SISCI", "5.26.0-d", "aarch64")),
        ("Dolphin-NetworkManager-5.26.0-1.el9.x86_64.rpm", ("Dolphin-NetworkManager", "5.26.0", "x86_64")),
        ("Dolphin-PX-5.26.0.1-1.x86_64.rpm", None),
    ],
)
def test_rpm_file_names(name, expected):
    parsed = vendor.parse_rpm_filename(name)
    assert (parsed and (parsed["name"], parsed["version"], parsed["arch"])) == expected


# ---------------------------------------------------------------------------
# The installer's name (§2)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, name, version",
    [
        ("§2", "Dolphin_eXpressWare-5.26.0.sh", "5.26.0"),  # Dolphin_eXpressWare-<version>.sh
        (
            "§2",
            "Dolphin_eXpressWare-Linux-x86_64-PX-28a8824496_ce05d9958c.ubuntu18.04.sh",
            None,
        ),  # a CI build: no version
        ("§2", "DIS_install_3.3.0.sh", "3.3.0"),  # DIS_install_<version>.sh (3.x)
        ("§2", "Dolphin_eXpressWare-Linux-x86_64-PX-5.26.0.sh", "5.26.0"),  # [I] GA names
        ("§2", "Dolphin_eXpressWare-Linux-x86_64-MX-5.26.0-d.sh", "5.26.0-d"),
        ("variant", "Dolphin_eXpressWare-Linux-x86_64-PX-5.26.0.ubuntu18.04.sh", "5.26.0"),
        ("variant", "Dolphin_eXpressWare-Linux-x86_64-IX-5.26.0-d.el9.sh", "5.26.0-d"),
        ("variant", "Dolphin_eXpressWare-5.26.0.1.sh", None),
        ("variant", "Dolphin_eXpressWare-$(reboot)-5.26.0.sh", None),
    ],
)
def test_installer_name(source, name, version):
    assert vendor.sia_version(name) == version, source


# ---------------------------------------------------------------------------
# Versions as printed (§5.2) and how a suffix compares
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token, version",
    [
        ("5.25.2", "5.25.2"),
        ("5.26.0-d", "5.26.0-d"),
        ("5.25.0-d", "5.25.0-d"),  # §5.2 (Dishostseditor 5.25.0-d)
        ("5.26.0d", "5.26.0-d"),
        ("v5.25.2", "5.25.2"),
        ("5.25.2-1", "5.25.2"),
        ("5.26.0-d.el9", "5.26.0-d"),
        ("5.25", None),
        ("5.25.2.1", None),
        ("05.25.2", None),
        ("2026", None),
        ("5.26.0-", None),
    ],
)
def test_printed_version(token, version):
    assert vendor.printed_version(token) == version


def test_a_snapshot_sorts_before_its_release_and_after_the_one_before():
    # "5.26.0-d" is the development snapshot of 5.26.0 (§5.2 [S20]): older than 5.26.0, newer than 5.25.x.
    assert vendor.compare_versions("5.26.0-d", "5.26.0") == -1
    assert vendor.compare_versions("5.26.0-d", "5.25.2") == 1
    assert vendor.compare_versions(vendor.printed_version("5.26.0d"), "5.26.0-d") == 0
    # A package release number is packaging: 5.25.2-1 is the GA 5.25.2.
    assert vendor.compare_versions(vendor.printed_version("5.25.2-1"), "5.25.2") == 0
