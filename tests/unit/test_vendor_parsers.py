"""The vendor-output parsers on verbatim output (expressware-facts.md §3 and §10)."""

import pytest

from tests.shared_code import load

vendor = load("expressware_vendor")

STOP_OK = """\
Stopping Dolphin SuperSockets drivers                      [  OK  ]
Stopping Dolphin SISCI driver                              [  OK  ]
Stopping Dolphin Node Manager                              [  OK  ]
Stopping Dolphin IRM driver                                [  OK  ]
Stopping Dolphin IX driver                                 [  OK  ]
Stopping Dolphin KOSIF driver                              [  OK  ]
"""

STOP_BLOCKED = """\
Stopping Dolphin SuperSockets drivers                      [FAILED]
Stopping Dolphin SISCI driver                              [  OK  ]
Stopping Dolphin Node Manager                              [  OK  ]
Stopping Dolphin IRM driver                                [FAILED]
Stopping Dolphin PX driver                                 [FAILED]
Stopping Dolphin KOSIF driver                              [FAILED]
"""

STATUS_RUNNING = """\
Dolphin KOSIF 5.25.2 is running.
Dolphin PX 5.25.2 is running.
Dolphin IRM 5.25.2 is running.
Dolphin Node Manager is running (pid 3172).
Dolphin SISCI 5.25.2 is running.
Dolphin SuperSockets 5.25.2 is running.
"""

STATUS_STOPPED = """\
Dolphin KOSIF is stopped.
Dolphin PX is stopped.
Dolphin IRM is stopped.
Dolphin Node Manager is stopped.
Dolphin SISCI is stopped.
Dolphin SuperSockets is stopped.
"""


def test_stop_lines_verbatim_ok():
    lines = vendor.parse_action_output(STOP_OK)
    assert [line["service"] for line in lines] == ["supersockets", "sisci", "nodemgr", "irm", "adapter", "kosif"]
    assert all(line["ok"] and line["action"] == "stop" for line in lines)
    assert lines[4]["label"] == "IX driver"


def test_stop_lines_failed_are_named():
    lines = vendor.parse_action_output(STOP_BLOCKED)
    assert [line["label"] for line in lines if not line["ok"]] == [
        "SuperSockets drivers",
        "IRM driver",
        "PX driver",
        "KOSIF driver",
    ]


def test_start_lines():
    text = "".join(
        f"{('Starting Dolphin ' + label).ljust(59)}[  OK  ]\n"
        for label in ["KOSIF driver", "MX driver", "IRM driver", "Node Manager", "SISCI driver", "SuperSockets drivers"]
    )
    lines = vendor.parse_action_output(text)
    assert [line["action"] for line in lines] == ["start"] * 6


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "\n\n",
        "Stopping Dolphin Foo driver    [  OK  ]",
        "Segmentation fault",
        "Stopping Dolphin SISCI driver [ MAYBE ]",
        "Stopping Dolphin",
        "Stopping the world [  OK  ]",
    ],
)
def test_action_garbage_raises(garbage):
    with pytest.raises(vendor.VendorOutputError):
        vendor.parse_action_output(garbage)


def test_status_running():
    services = vendor.parse_status(STATUS_RUNNING)
    assert list(services) == ["kosif", "adapter", "irm", "nodemgr", "sisci", "supersockets"]
    assert services["nodemgr"] == {"label": "Node Manager", "running": True, "version": None, "pid": 3172}
    assert vendor.running_version(services) == "5.25.2"


def test_status_stopped():
    services = vendor.parse_status(STATUS_STOPPED)
    assert not any(entry["running"] for entry in services.values())
    assert vendor.running_version(services) is None


def test_status_partly_stopped_snapshot_version():
    text = STATUS_RUNNING.replace("5.25.2", "5.26.0-d").replace(
        "Dolphin SuperSockets 5.26.0-d is running.", "Dolphin SuperSockets is stopped."
    )
    services = vendor.parse_status(text)
    assert services["supersockets"]["running"] is False
    assert vendor.running_version(services) == "5.26.0-d"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        STATUS_RUNNING.replace("Dolphin SISCI 5.25.2 is running.\n", ""),  # a service missing
        STATUS_RUNNING + "Dolphin SISCI 5.25.2 is running.\n",  # twice
        STATUS_RUNNING.replace("is running.", "is runnning."),
        "dis_services: command not found",
    ],
)
def test_status_garbage_raises(garbage):
    with pytest.raises(vendor.VendorOutputError):
        vendor.parse_status(garbage)


def test_mixed_running_versions_raise():
    services = vendor.parse_status(STATUS_RUNNING.replace("Dolphin IRM 5.25.2", "Dolphin IRM 5.26.0"))
    with pytest.raises(vendor.VendorOutputError, match="different versions"):
        vendor.running_version(services)


def test_diag():
    passed = vendor.parse_diag(
        "dis_diag version: 5.25.2\nLink 0: State: ENABLED, Active: 1\n0 warnings and 0 errors\nTEST RESULT: PASSED\n"
    )
    assert passed["passed"] is True
    failed = vendor.parse_diag("Dolphin drivers are not loaded\nTEST RESULT: FAILED\n")
    assert failed["passed"] is False
    # The layout is not documented (§4.3): a summary may follow the verdict, but verdicts must agree.
    assert vendor.parse_diag("TEST RESULT: PASSED\n0 warnings and 0 errors\n")["passed"] is True
    with pytest.raises(vendor.VendorOutputError, match="both"):
        vendor.parse_diag("TEST RESULT: PASSED\nTEST RESULT: FAILED\n")
    with pytest.raises(vendor.VendorOutputError):
        vendor.parse_diag("Dolphin drivers are not loaded\n")
    with pytest.raises(vendor.VendorOutputError):
        vendor.parse_diag("")


def test_rpm_packages_and_versions():
    text = "Dolphin-PX 5.25.2-1\nDolphin-SISCI 5.25.2-1\nDolphin-SuperSockets 5.25.2-1\n"
    packages = vendor.parse_rpm_packages(text)
    assert packages == {"Dolphin-PX": "5.25.2", "Dolphin-SISCI": "5.25.2", "Dolphin-SuperSockets": "5.25.2"}
    assert vendor.installed_version(packages) == "5.25.2"
    assert vendor.parse_rpm_packages("Dolphin-PX 5.26.0-d\n") == {"Dolphin-PX": "5.26.0-d"}
    assert vendor.installed_version({}) is None
    with pytest.raises(vendor.VendorOutputError, match="different versions"):
        vendor.installed_version({"Dolphin-PX": "5.25.2", "Dolphin-SISCI": "5.26.0"})
    with pytest.raises(vendor.VendorOutputError):
        vendor.parse_rpm_packages("error: rpmdb open failed\n")


@pytest.mark.parametrize("good", ["5.25.2", "5.26.0-d", "10.0.11", "5.26.0-rc1"])
def test_versions_valid(good):
    assert vendor.check_version(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "5.26",
        "5.26.0.1",
        "v5.26.0",
        "5.26.0-",
        "5.26.0;rm -rf /",
        "$(id)",
        "5.26.0\n",
        " 5.26.0",
        "--enforce",
        "../5.26.0",
        None,
        5.26,
    ],
)
def test_versions_invalid(bad):
    with pytest.raises(ValueError, match="not an eXpressWare version"):
        vendor.check_version(bad)


def test_version_ordering():
    ordered = ["5.9.9", "5.25.2", "5.26.0-d", "5.26.0", "5.26.1", "6.0.0"]
    assert sorted(reversed(ordered), key=vendor.version_key) == ordered
    assert vendor.compare_versions("5.26.0", "5.26.0") == 0


def test_sia_version_from_name():
    assert vendor.sia_version("Dolphin_eXpressWare-5.26.0.sh") == "5.26.0"
    assert vendor.sia_version("Dolphin_eXpressWare-Linux-x86_64-PX-5.26.0-d.sh") == "5.26.0-d"
    assert vendor.sia_version("Dolphin_eXpressWare-Linux-x86_64-PX-28a8824496_ce05d9958c.ubuntu18.04.sh") is None


class TestRollingRule:
    def test_default_same_major(self):
        assert vendor.rolling_compatible("5.25.2", "5.26.0")[0] is True

    def test_default_across_major_refused_names_rule(self):
        allowed, rule = vendor.rolling_compatible("5.25.2", "6.0.0")
        assert allowed is False and "crosses major versions" in rule and "compat:rolling" in rule

    def test_declared_pair_allows_across_major(self):
        compat = {"rolling": [{"from": "5.26.*", "to": ">=6.0.0,<6.1.0"}]}
        assert vendor.rolling_compatible("5.26.1", "6.0.2", compat)[0] is True
        assert vendor.rolling_compatible("5.25.1", "6.0.2", compat)[0] is False

    def test_declared_incompatibility_always_refuses(self):
        compat = {"rolling": [{"from": "5.25.*", "to": "5.26.0"}], "incompatible": ["5.26.0"]}
        allowed, rule = vendor.rolling_compatible("5.25.2", "5.26.0", compat)
        assert allowed is False and "incompatible" in rule

    @pytest.mark.parametrize(
        "bad",
        [
            "yes",
            ["5.26.0"],
            {"rolling": "5.26.0"},
            {"rolling": [{"from": "5.25.*"}]},
            {"incompatible": ["not-a-version"]},
            {"other": []},
        ],
    )
    def test_bad_compat_data(self, bad):
        with pytest.raises(ValueError):
            vendor.validate_compat(bad)


class TestUpdateDecision:
    def test_none_when_installed_and_running(self):
        assert vendor.update_decision("5.26.0", "5.26.0", "5.26.0")["action"] == "none"

    def test_activate_when_installed_under_load(self):
        assert vendor.update_decision("5.26.0", "5.25.2", "5.26.0")["action"] == "activate"

    def test_install(self):
        assert vendor.update_decision("5.25.2", "5.25.2", "5.26.0")["action"] == "install"

    def test_downgrade_needs_enforce(self):
        decision = vendor.update_decision("5.26.0", "5.26.0", "5.25.2")
        assert decision["action"] == "refuse" and "enforce=True" in decision["reason"]
        assert vendor.update_decision("5.26.0", "5.26.0", "5.25.2", enforce=True)["action"] == "install"

    def test_release_notes_refusal(self):
        decision = vendor.update_decision("5.25.2", "5.25.2", "6.0.0")
        assert decision["action"] == "refuse" and "major" in decision["reason"]

    def test_not_installed(self):
        assert vendor.update_decision(None, None, "5.26.0")["action"] == "refuse"


def test_rpm_file_names():
    assert vendor.parse_rpm_filename("Dolphin-PX-5.26.0-1.x86_64.rpm") == {
        "name": "Dolphin-PX",
        "version": "5.26.0",
        "arch": "x86_64",
    }
    assert vendor.parse_rpm_filename("Dolphin-SuperSockets-5.26.0-d.aarch64.rpm")["version"] == "5.26.0-d"
    assert vendor.parse_rpm_filename("Dolphin-NetworkManager-5.26.0-1.el9.x86_64.rpm")["version"] == "5.26.0"
    assert vendor.parse_rpm_filename("notes.txt") is None


def test_frontend_packages_have_their_own_version():
    # --install-node leaves the frontend packages alone: a frontend that is also a Cluster
    # Node has two versions for a while, and that is not a half-finished installation.
    packages = {
        "Dolphin-PX": "5.26.0",
        "Dolphin-SISCI": "5.26.0",
        "Dolphin-NetworkManager": "5.25.2",
        "Dolphin-NetworkHosts": "5.25.2",
    }
    assert vendor.installed_version(packages) == "5.26.0"
    assert vendor.frontend_version(packages) == "5.25.2"
    assert vendor.frontend_version({"Dolphin-PX": "5.26.0"}) is None
    with pytest.raises(vendor.VendorOutputError, match="frontend packages have different versions"):
        vendor.frontend_version(dict(packages, **{"Dolphin-NetworkHosts": "5.26.0"}))


@pytest.mark.parametrize(
    "installed, enforce, action",
    [
        (None, False, "refuse"),
        (None, True, "refuse"),
        ("5.25.2", False, "install"),
        ("5.26.0", False, "none"),
        ("5.26.0", True, "install"),
        ("5.26.1", False, "refuse"),
        ("5.26.1", True, "install"),
    ],
)
def test_frontend_decision(installed, enforce, action):
    decision = vendor.frontend_decision(installed, "5.26.0", enforce=enforce)
    assert decision["action"] == action, decision
    if installed is None:
        assert "not a Cluster Management Node" in decision["reason"]
