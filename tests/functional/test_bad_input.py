"""Every public function of ``dis_services``, ``sia`` and ``expressware`` fed bad input.

Wrong types, empty values, huge values and hostile strings get a clear
``SaltInvocationError`` or ``CommandExecutionError`` that names the problem, and
nothing runs on the node: its journal shows no command that could change it, and
no shell ever saw the strings (the canary file the hostile strings would create
stays absent). ``dis_services`` takes no arguments; its input is the configuration
(``expressware:prefix``), which is fed the same values.

The runner's argument checks (``salt-run rolling.update``) are in
``tests/integration/test_bad_input.py``.
"""

import os
import re

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from expressware_sim import write_sia
from tests.conftest import NEW, changing_commands

CANARY = "/tmp/expressware-bad-input-canary"

#: Strings that would do harm if any of them reached a shell or an option list.
HOSTILE = [
    f";touch {CANARY}",
    f"$(touch {CANARY})",
    f"`touch {CANARY}`",
    f"x\ntouch {CANARY}",
    "../../etc",
    "--enforce",
]
HUGE = "9" * 1_000_000


def short(value):
    """A readable test id for a parameter value (the huge ones would fill the screen)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} chars)"


#: Values of the wrong type, for string and path parameters.
WRONG_TYPES = [5, 5.26, True, ["5.26.0"], {"a": 1}]


@pytest.fixture(autouse=True)
def nothing_ran(node, tmp_path):
    """The node is untouched and no shell ran a hostile string."""
    if os.path.exists(CANARY):
        os.unlink(CANARY)
    before = changing_commands(node)
    yield
    assert changing_commands(node) == before, "a command that could change the node ran"
    assert not os.path.exists(CANARY), "a hostile string reached a shell"
    assert node.state()["active"]


def _raises(func, kwargs, exc_type, pattern):
    """Call and check the error: its type, and that it names the problem (``pattern``).

    A huge value is quoted in full inside the message, so the whole message is searched.
    """
    with pytest.raises(exc_type) as info:
        func(**kwargs)
    message = str(info.value)
    assert re.search(pattern, message, re.S), f"{func.__name__}({kwargs!r:.200}): {message[:300]!r}"
    return info.value


# ---------------------------------------------------------------------------
# Configuration read by every function: expressware:prefix, :rpm, :workdir
# ---------------------------------------------------------------------------

DIS_SERVICES = ["status", "start", "stop", "restart"]
PREFIX_USERS = [("dis_services", name) for name in DIS_SERVICES] + [
    ("expressware", name) for name in ("running_version", "diag", "node_state", "is_active")
]


@pytest.mark.parametrize("module, function", PREFIX_USERS, ids=short)
@pytest.mark.parametrize(
    "prefix, pattern",
    [
        ("", "expressware:prefix must be a non-empty string"),
        (5, "expressware:prefix must be a non-empty string"),
        (["/opt/DIS"], "expressware:prefix must be a non-empty string"),
        ("opt/DIS", "expressware:prefix must be an absolute path"),
        (HUGE, "expressware:prefix must be an absolute path"),
        ("/" + HUGE, "not found: is Dolphin eXpressWare installed"),
        *[(bad, "expressware:prefix must be an absolute path") for bad in HOSTILE],
        *[(f"/opt/DIS{bad}", "not found: is Dolphin eXpressWare installed") for bad in HOSTILE],
    ],
    ids=short,
)
def test_bad_prefix(modules, node, configure, module, function, prefix, pattern):
    configure("prefix", prefix)
    _raises(getattr(getattr(modules, module), function), {}, CommandExecutionError, pattern)


@pytest.mark.parametrize("function", ["packages", "version", "frontend_version"], ids=short)
@pytest.mark.parametrize(
    "rpm, pattern",
    [
        ("", "expressware:rpm must be a non-empty string"),
        (0, "expressware:rpm must be a non-empty string"),
        ({"rpm": 1}, "expressware:rpm must be a non-empty string"),
        (HUGE, "the rpm executable .* was not found"),
        *[(bad, "the rpm executable .* was not found") for bad in HOSTILE],
        *[(f"/usr/bin/rpm{bad}", "the rpm executable .* was not found") for bad in HOSTILE],
    ],
    ids=short,
)
def test_bad_rpm(modules, node, configure, function, rpm, pattern):
    configure("rpm", rpm)
    _raises(getattr(modules.expressware, function), {}, CommandExecutionError, pattern)


def test_dis_services_functions_take_no_arguments(modules, node):
    # Salt's job wrapper reports this as "Passed invalid arguments"; nothing runs.
    for function in DIS_SERVICES:
        with pytest.raises(TypeError):
            getattr(modules.dis_services, function)(";rm -rf /")


# ---------------------------------------------------------------------------
# expressware
# ---------------------------------------------------------------------------

BAD_VERSIONS = [
    "",
    " ",
    "5.26",
    "5.26.0.1",
    "v5.26.0",
    "05.26.0",
    "５.２６.０",
    HUGE,
    "5.26.0" + "9" * 100_000,
    *HOSTILE,
    *[f"{NEW}{bad}" for bad in HOSTILE],
]


@pytest.mark.parametrize("version", BAD_VERSIONS + WRONG_TYPES + [None], ids=short)
def test_expressware_versions(modules, node, version):
    for function in (
        modules.expressware.validate_version,
        modules.expressware.check_update,
        modules.expressware.frontend_preflight,
    ):
        _raises(function, {"version": version}, SaltInvocationError, r"^version .* is not an eXpressWare version")
    result = modules.expressware.preflight(version)
    assert "is not an eXpressWare version" in result["error"] and "decision" not in result


@pytest.mark.parametrize("enforce", ["False", "no", "", 0, 1, [True], *HOSTILE], ids=short)
def test_expressware_enforce_must_be_a_boolean(modules, node, enforce):
    _raises(
        modules.expressware.check_update,
        {"version": "5.24.0", "enforce": enforce},
        SaltInvocationError,
        "^enforce must be True or False",
    )
    assert "enforce must be True or False" in modules.expressware.preflight("5.24.0", enforce=enforce)["error"]
    _raises(
        modules.expressware.frontend_preflight,
        {"version": "5.24.0", "enforce": enforce},
        SaltInvocationError,
        "^enforce must be True or False",
    )


@pytest.mark.parametrize(
    "compat",
    [
        "yes",
        5,
        ["5.26.0"],
        {"rolling": "5.26.0"},
        {"rolling": [{"from": "5.25.*"}]},
        {"other": []},
        {"incompatible": [HUGE]},
        *[{"incompatible": [bad]} for bad in HOSTILE],
        *[{"rolling": [{"from": bad, "to": "*"}]} for bad in HOSTILE],
    ],
    ids=short,
)
def test_expressware_compat(modules, node, compat):
    _raises(
        modules.expressware.check_update,
        {"version": NEW, "compat": compat},
        SaltInvocationError,
        "^invalid rolling-compatibility data",
    )
    assert modules.expressware.preflight(NEW, compat=compat)["error"].startswith("invalid rolling-compatibility data")


@pytest.mark.parametrize(
    "sia, pattern",
    [
        (5, "sia must be a path or salt:// URL"),
        (["/tmp/Dolphin_eXpressWare-5.26.0.sh"], "sia must be a path or salt:// URL"),
        (" ", "sia must be a path or salt:// URL"),
        (HUGE, "must be an absolute path or a salt:// URL"),
        ("salt://" + HUGE, "was not found on the master's file server"),
        *[(bad, "newline|must be an absolute path or a salt:// URL") for bad in HOSTILE],
        *[(f"/tmp/Dolphin_eXpressWare-{NEW}.sh{bad}", "newline|is not an eXpressWare installer") for bad in HOSTILE],
        *[
            (f"salt://expressware/Dolphin_eXpressWare-{NEW}.sh{bad}", "newline|not found on the master's file server")
            for bad in HOSTILE
        ],
    ],
    ids=short,
)
def test_expressware_preflight_sia(modules, node, sia, pattern):
    result = modules.expressware.preflight(NEW, sia=sia)
    assert "error" not in result and result["decision"]["action"] == "install"
    assert re.search(pattern, result["sia_error"], re.S), result["sia_error"][:300]


@pytest.mark.parametrize("workdir", ["", "relative/dir", 5, ["/tmp"], HUGE, *HOSTILE], ids=short)
def test_expressware_staged_rpms_workdir(modules, node, workdir):
    _raises(
        modules.expressware.staged_rpms, {"workdir": workdir}, SaltInvocationError, "^workdir must be an absolute path"
    )


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        *[
            ({"timeout": bad}, "^timeout must be")
            for bad in ("", "soon", -1, 86401, 10**100, float("nan"), float("inf"), True, [1], None, HUGE, *HOSTILE)
        ],
        *[({"interval": bad}, "^interval must be") for bad in ("", 0, 0.001, 61, 10**100, True, [1], HUGE, *HOSTILE)],
        *[({"fire_event": bad}, "^fire_event must be True or False") for bad in ("False", "no", 1, [True], *HOSTILE)],
    ],
    ids=short,
)
def test_expressware_wait_active(modules, node, kwargs, pattern):
    _raises(modules.expressware.wait_active, kwargs, SaltInvocationError, pattern)


# ---------------------------------------------------------------------------
# sia
# ---------------------------------------------------------------------------


@pytest.fixture
def sia_path(tmp_path):
    return str(write_sia(tmp_path / "sias", NEW))


@pytest.mark.parametrize("sia", [5, None, ["x.sh"], {"a": 1}], ids=short)
def test_sia_version_wrong_types(modules, node, sia):
    _raises(modules.sia.version, {"sia": sia}, SaltInvocationError, "^sia must be a path or salt:// URL")


@pytest.mark.parametrize(
    "sia",
    [
        "",
        HUGE,
        *HOSTILE,
        *[f"Dolphin_eXpressWare-{bad}-{NEW}.sh" for bad in HOSTILE[:3]],
        f"Dolphin_eXpressWare-{NEW}.sh\n",
        "Dolphin_eXpressWare-05.26.0.sh",
    ],
    ids=short,
)
def test_sia_version_of_hostile_names_is_none(modules, node, sia):
    assert modules.sia.version(sia) is None


SIA_ERRORS = [
    (5, "^sia must be a path or salt:// URL"),
    (None, "^sia must be a path or salt:// URL"),
    ([NEW], "^sia must be a path or salt:// URL"),
    ("", "^sia must be a path or salt:// URL"),
    (HUGE, "must be an absolute path or a salt:// URL"),
    ("/" + HUGE, "is not an eXpressWare installer"),
    ("salt://nowhere/Dolphin_eXpressWare-5.26.0.sh", "^installer salt://nowhere/.* was not found on the master"),
    ("/nowhere/Dolphin_eXpressWare-5.26.0.sh", "^installer /nowhere/.* does not exist"),
    ("/etc/passwd", "^/etc/passwd is not an eXpressWare installer"),
    *[(bad, "newline|must be an absolute path or a salt:// URL") for bad in HOSTILE],
    *[(f"/tmp/Dolphin_eXpressWare-{bad}-{NEW}.sh", "newline|is not an eXpressWare installer") for bad in HOSTILE[:3]],
    (f"/tmp/Dolphin_eXpressWare-{NEW}.sh\0", "NUL"),
]


@pytest.mark.parametrize("sia, pattern", SIA_ERRORS, ids=short)
def test_sia_fetch(modules, node, sia, pattern):
    _raises(modules.sia.fetch, {"sia": sia}, SaltInvocationError, pattern)


@pytest.mark.parametrize("function", ["build_rpm", "install_node", "install_frontend"], ids=short)
@pytest.mark.parametrize("sia, pattern", SIA_ERRORS, ids=short)
def test_sia_runs_nothing_for_a_bad_installer(modules, node, function, sia, pattern):
    _raises(getattr(modules.sia, function), {"sia": sia}, SaltInvocationError, pattern)


@pytest.fixture
def installer_url(minion_opts):
    """An installer that is on the file server, in ``base``: a refusal below is about ``saltenv`` alone."""
    write_sia(os.path.join(minion_opts["file_roots"]["base"][0], "expressware"), NEW)
    return f"salt://expressware/Dolphin_eXpressWare-{NEW}.sh"


def test_sia_saltenv_names_the_environment(modules, node, installer_url):
    assert modules.sia.fetch(installer_url, saltenv="base")["version"] == NEW


@pytest.mark.parametrize("saltenv", [["base"], {"base": 1}, True, 5.26, "", " ", "base\n", "ba\0se"], ids=short)
def test_sia_saltenv_that_is_no_name(modules, node, installer_url, saltenv):
    """Refused before Salt's file client sees it (3006 and 3007 end in a raw TypeError on a non-string)."""
    _raises(modules.sia.fetch, {"sia": installer_url, "saltenv": saltenv}, SaltInvocationError, "^saltenv")


@pytest.mark.parametrize("saltenv", [5, HUGE, *[bad for bad in HOSTILE if "\n" not in bad]], ids=short)
def test_sia_saltenv_of_no_environment(modules, node, installer_url, saltenv):
    """A number names an environment (``saltenv=5`` arrives as an int); none of these has the installer."""
    _raises(
        modules.sia.fetch,
        {"sia": installer_url, "saltenv": saltenv},
        SaltInvocationError,
        "was not found on the master's file server",
    )


BAD_WORKDIRS = ["", "relative", 5, ["/tmp"], {"a": 1}, "/tmp\n/etc", HUGE, *HOSTILE]


@pytest.mark.parametrize("workdir", BAD_WORKDIRS, ids=short)
def test_sia_workdir(modules, node, sia_path, workdir):
    for function, kwargs in (
        ("clear_rpms", {}),
        ("build_rpm", {"sia": sia_path}),
        ("install_node", {"sia": sia_path}),
        ("install_frontend", {"sia": sia_path}),
    ):
        _raises(
            getattr(modules.sia, function),
            dict(kwargs, workdir=workdir),
            SaltInvocationError,
            "^workdir must be an absolute path",
        )


@pytest.mark.parametrize(
    "timeout", ["", "10", 0, -1, 86401, 10**100, float("nan"), float("inf"), True, [1], HUGE, *HOSTILE], ids=short
)
def test_sia_timeout(modules, node, sia_path, timeout):
    for function in ("build_rpm", "install_node", "install_frontend"):
        _raises(
            getattr(modules.sia, function),
            {"sia": sia_path, "timeout": timeout},
            SaltInvocationError,
            "^timeout must be a number of seconds",
        )


@pytest.mark.parametrize("flag", ["reboot", "enforce"], ids=short)
@pytest.mark.parametrize("value", ["True", "no", "", 0, 1, None, [True], HUGE, *HOSTILE], ids=short)
def test_sia_flags(modules, node, sia_path, flag, value):
    for function in ("install_node", "install_frontend"):
        _raises(
            getattr(modules.sia, function),
            {"sia": sia_path, flag: value},
            SaltInvocationError,
            f"^{flag} must be True or False",
        )


@pytest.mark.parametrize("flag", ["clear", "push"], ids=short)
@pytest.mark.parametrize("value", ["True", "no", "", 0, 1, None, [True], HUGE, *HOSTILE], ids=short)
def test_sia_build_flags(modules, node, sia_path, flag, value):
    _raises(
        modules.sia.build_rpm, {"sia": sia_path, flag: value}, SaltInvocationError, f"^{flag} must be True or False"
    )


@pytest.mark.parametrize(
    "use_rpms, pattern",
    [
        (5, "^use_rpms must be True or an absolute directory path"),
        (["/tmp"], "^use_rpms must be True or an absolute directory path"),
        ("", "^use_rpms must be True or an absolute directory path"),
        ("relative", "^use_rpms must be True or an absolute directory path"),
        ("/tmp\n/etc", "^use_rpms must be True or an absolute directory path"),
        (HUGE, "^use_rpms must be True or an absolute directory path"),
        ("/" + HUGE, "holds no RPM packages"),
        (True, "holds no RPM packages"),  # nothing built or staged in the work directory
        *[(bad, "^use_rpms must be True or an absolute directory path") for bad in HOSTILE],
        *[(f"/tmp{bad}", "^use_rpms must be True|holds no RPM packages") for bad in HOSTILE],
    ],
    ids=short,
)
def test_sia_use_rpms(modules, node, sia_path, use_rpms, pattern):
    for function in ("install_node", "install_frontend"):
        _raises(getattr(modules.sia, function), {"sia": sia_path, "use_rpms": use_rpms}, SaltInvocationError, pattern)
