"""Properties of the pure shared code (``_utils/``) over generated versions, names, paths and targets.

Hypothesis generates the inputs; each test states a rule that must hold for
every one of them. The documented grammar of a version (``expressware_vendor``:
``MAJOR.MINOR.PATCH`` with an optional suffix such as ``-d``; at most 6 digits per
number, a suffix of a letter and at most 15 more letters or digits) is written
out here independently, in ASCII, and without leading zeros: ``05.26.0`` would be
a second spelling of ``5.26.0`` (the RPMs of both say ``5.26.0``), which the
version comparisons and the runner's ``running == target`` checks cannot tell
apart.
"""

import os
import re

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tests.shared_code import load

vendor = load("expressware_vendor")
store = load("expressware_store")
rollout = load("expressware_rollout")
runner = load("rolling", "_runners")

settings.register_profile("expressware", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("expressware")

NUMBER = r"(?:0|[1-9][0-9]{0,5})"
GRAMMAR = re.compile(rf"{NUMBER}\.{NUMBER}\.{NUMBER}(?:-[A-Za-z][A-Za-z0-9]{{0,15}})?")

#: Strings an attacker or a typo could slip into an argument.
HOSTILE = [
    ";rm -rf /",
    "$(reboot)",
    "$(id)",
    "`id`",
    "\n",
    "\r\n",
    "../",
    "/..",
    "--enforce",
    " ",
    "\0",
    "|sh",
    "&&",
    "'",
    '"',
    "*",
    "\t",
]

numbers = st.integers(0, 999_999).map(str)
suffixes = st.from_regex(r"\A[A-Za-z][A-Za-z0-9]{0,15}\Z")
versions = st.builds(
    lambda a, b, c, s: f"{a}.{b}.{c}" + (f"-{s}" if s else ""), numbers, numbers, numbers, st.none() | suffixes
)
#: Small numbers, so that generated versions share triples and test the ordering hard.
close_versions = st.builds(
    lambda a, b, c, s: f"{a}.{b}.{c}" + (f"-{s}" if s else ""),
    st.integers(0, 2).map(str),
    st.integers(0, 2).map(str),
    st.integers(0, 2).map(str),
    st.none() | st.sampled_from(["a", "b", "d", "rc1"]),
)
#: Text near the grammar: digits (also non-ASCII ones), dots, dashes, letters, hostile bits.
versionish = st.text(
    alphabet=st.sampled_from(list("0123456789..--adZ") + ["٥", "５", "\n", " ", ";", "$", "/"]), max_size=24
)
hostile = st.sampled_from(HOSTILE)
#: A character that cannot be in a cluster name, a rollout id or an installer's file name.
NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.-]")


def _sign(value):
    return (value > 0) - (value < 0)


# ---------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------


@given(st.one_of(st.text(), versionish, versions))
@example("٥.٢٦.٠")  # Arabic-Indic digits are \d for Python's re
@example("５.２６.０")  # fullwidth digits
@example("05.26.0")
@example("5.26.0\n")
@example("5.26.0-d")
def test_a_version_is_exactly_what_the_grammar_says(text):
    assert vendor.is_version(text) == bool(GRAMMAR.fullmatch(text)), text
    if GRAMMAR.fullmatch(text):
        assert vendor.check_version(text) == text
    else:
        with pytest.raises(ValueError, match="not an eXpressWare version"):
            vendor.check_version(text)


@given(
    st.one_of(
        st.none(), st.integers(), st.floats(), st.binary(), st.lists(versions), st.dictionaries(versions, versions)
    )
)
def test_only_text_can_be_a_version(value):
    assert vendor.is_version(value) is False
    with pytest.raises(ValueError):
        vendor.check_version(value)


@given(versions)
def test_every_generated_version_is_valid(version):
    assert vendor.check_version(version) == version


@given(close_versions | versions, close_versions | versions, close_versions | versions)
def test_version_key_is_a_total_order_consistent_with_compare(a, b, c):
    cmp = vendor.compare_versions
    key = vendor.version_key
    assert cmp(a, b) == _sign((key(a) > key(b)) - (key(a) < key(b)))
    assert cmp(a, b) == -cmp(b, a)  # antisymmetric
    assert (cmp(a, b) == 0) == (a == b)  # one spelling per version
    assert (key(a) == key(b)) == (a == b)
    if cmp(a, b) <= 0 and cmp(b, c) <= 0:
        assert cmp(a, c) <= 0  # transitive
    ordered = sorted([a, b, c], key=key)
    assert all(cmp(x, y) <= 0 for x, y in zip(ordered, ordered[1:]))


@given(versions)
def test_a_snapshot_sorts_before_its_release(version):
    release = version.split("-")[0]
    if release != version:
        assert vendor.compare_versions(version, release) == -1


@given(versions, hostile, st.integers(0, 40))
def test_hostile_text_inside_a_version_never_validates(version, bad, position):
    position = min(position, len(version))
    for candidate in (bad, bad + version, version + bad, version[:position] + bad + version[position:]):
        assert vendor.is_version(candidate) is False, candidate


# ---------------------------------------------------------------------------
# Names that become file names on the master (cluster names, rollout ids)
# ---------------------------------------------------------------------------


@given(st.text())
@example("..")
@example(".")
@example("a/../b")
@example("-rf")
def test_a_valid_name_is_a_plain_file_name(text):
    try:
        name = store.check_name(text, "cluster")
    except ValueError as exc:
        assert "cluster" in str(exc)
        return
    assert name == text
    assert 1 <= len(name) <= 64
    assert os.sep not in name and "\0" not in name and not name.startswith((".", "-"))
    directory = "/var/cache/salt/master/expressware/leases"
    path = store.LeaseStore(directory)._path(name)  # pylint: disable=protected-access
    assert os.path.dirname(path) == directory and os.path.normpath(path) == path


@given(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,20}\Z"), hostile)
def test_hostile_text_never_makes_a_valid_name(name, bad):
    for candidate in (bad, bad + name):
        with pytest.raises(ValueError):
            store.check_name(candidate, "cluster")  # nothing that starts like an option, a path or a command
    if NOT_NAME_CHAR.search(bad):
        with pytest.raises(ValueError):
            store.check_name(name + bad, "cluster")


# ---------------------------------------------------------------------------
# Installer (SIA) file names
# ---------------------------------------------------------------------------

SIA_CHARS = re.compile(r"[A-Za-z0-9._+-]+")


@given(
    st.one_of(
        st.text(),
        st.builds(lambda a, b: f"Dolphin_eXpressWare-{a}{b}.sh", st.text(max_size=12), versionish),
        st.builds(lambda v: f"Dolphin_eXpressWare-{v}.sh", versions),
    )
)
@example("Dolphin_eXpressWare-$(reboot)-5.26.0.sh")
@example("Dolphin_eXpressWare-;rm -rf /-5.26.0.sh")
@example("Dolphin_eXpressWare-`id`-5.26.0.sh")
@example("Dolphin_eXpressWare-05.26.0.sh")
@example("Dolphin_eXpressWare-1234567.0.0.sh")
def test_an_sia_name_gives_a_valid_version_or_none(name):
    found = vendor.sia_version(name)
    if found is None:
        return
    assert vendor.is_version(found), (name, found)  # never a version the comparisons reject
    assert name.startswith("Dolphin_eXpressWare-") and name.endswith(f"{found}.sh")
    assert SIA_CHARS.fullmatch(name), name  # only what the sia module accepts in a file name


@given(versions)
def test_sia_name_round_trip(version):
    assert vendor.sia_version(f"Dolphin_eXpressWare-{version}.sh") == version
    assert vendor.sia_version(f"Dolphin_eXpressWare-Linux-x86_64-PX-{version}.sh") == version


@given(versions, hostile, st.sampled_from(["prefix", "version", "alone"]))
def test_hostile_text_never_makes_an_sia_name(version, bad, where):
    name = {
        "prefix": f"Dolphin_eXpressWare-{bad}-{version}.sh",
        "version": f"Dolphin_eXpressWare-{version}{bad}.sh",
        "alone": bad,
    }[where]
    if where == "prefix" and not NOT_NAME_CHAR.search(bad):
        # "--enforce" inside the name is harmless: the name is never the first word of
        # an argument (it always starts with Dolphin_eXpressWare-, in a path).
        return
    assert vendor.sia_version(name) is None, name


# ---------------------------------------------------------------------------
# Release notes: a declared incompatibility always refuses
# ---------------------------------------------------------------------------


def _specs_matching(version):
    """Version specifications (exact, glob, constraints) that match ``version``."""
    major, minor = version.split(".")[:2]
    return st.sampled_from(
        [
            version,
            "*",
            f"{major}.*",
            f"{major}.{minor}.*",
            f">={version}",
            f"<={version}",
            f"=={version}",
            f">={version},<={version}",
            ">=0.0.0,<=999999.999999.999999",
        ]
    )


specs = st.one_of(
    versions,
    st.sampled_from(["*", "5.*", "5.2?.*", "6.[01].*"]),
    st.builds(lambda op, v: f"{op}{v}", st.sampled_from([">=", "<=", ">", "<", "==", "!="]), versions),
)
pairs = st.fixed_dictionaries({"from": specs, "to": specs})


@given(
    versions,
    versions,
    st.data(),
    st.lists(pairs, max_size=3),
    st.lists(pairs | specs, max_size=3),
    st.booleans(),
    st.booleans(),
)
def test_a_declared_incompatibility_always_refuses(current, target, data, rolling, other, bare, first):
    to_spec = data.draw(_specs_matching(target))
    entry = to_spec if bare else {"from": data.draw(_specs_matching(current)), "to": to_spec}
    assert vendor.version_matches(target, to_spec)
    # The same pair may also be declared rolling-compatible: the incompatibility still wins.
    rolling = rolling + [{"from": current, "to": target}]
    incompatible = [entry] + other if first else other + [entry]
    compat = {"rolling": rolling, "incompatible": incompatible}
    allowed, rule = vendor.rolling_compatible(current, target, compat)
    assert allowed is False
    assert "incompatible" in rule and "complete update" in rule
    decision = vendor.update_decision(current, current, target, enforce=True, compat=compat)
    if current != target:
        assert decision["action"] == "refuse", decision


@given(versions, versions, st.lists(pairs, max_size=3), st.lists(pairs | specs, max_size=3))
def test_the_rule_is_allowed_or_refused_with_a_reason(current, target, rolling, incompatible):
    compat = {"rolling": rolling, "incompatible": incompatible}
    allowed, rule = vendor.rolling_compatible(current, target, compat)
    assert isinstance(allowed, bool) and rule
    declared = [e if isinstance(e, dict) else {"from": "*", "to": e} for e in incompatible]
    if any(vendor.version_matches(current, e["from"]) and vendor.version_matches(target, e["to"]) for e in declared):
        assert allowed is False


# ---------------------------------------------------------------------------
# The runner's arguments: targets, order, versions, paths
# ---------------------------------------------------------------------------


def _given(**changes):
    """The argument dict rolling.update hands to its check, with good defaults."""
    given_args = {
        "tgt": "*",
        "version": "5.26.0",
        "sia": "salt://expressware/Dolphin_eXpressWare-5.26.0.sh",
        "tgt_type": "glob",
        "reboot": False,
        "enforce": False,
        "applications": None,
        "node_timeout": 1800,
        "compat": None,
        "order": None,
        "sort": "name",
        "canary": 0,
        "frontend": None,
        "cluster": None,
        "build": True,
        "timeout": 60,
    }
    given_args.update(changes)
    return given_args


def test_the_defaults_pass():
    args = runner._check_args(_given())  # pylint: disable=protected-access
    assert args["cluster"] == "default" and args["version"] == "5.26.0"


@given(st.one_of(st.text(), versionish, hostile, st.integers(), st.floats(allow_nan=False), st.none()))
def test_runner_takes_only_valid_versions(version):
    if isinstance(version, str) and GRAMMAR.fullmatch(version):
        assert runner._check_args(_given(version=version))["version"] == version  # pylint: disable=protected-access
    else:
        with pytest.raises(runner.SaltInvocationError, match="not an eXpressWare version"):
            runner._check_args(_given(version=version))  # pylint: disable=protected-access


@given(st.text(max_size=30), hostile)
def test_runner_takes_no_target_with_a_line_break(text, bad):
    tgt = text + bad if "\n" in bad else text + "\n" + bad
    with pytest.raises(runner.SaltInvocationError, match="tgt"):
        runner._check_args(_given(tgt=tgt))  # pylint: disable=protected-access


@given(
    st.lists(st.one_of(st.just(""), st.integers(), st.none(), st.lists(st.text())), min_size=1, max_size=3),
    st.lists(st.from_regex(r"\Anode[0-9]{1,3}\Z"), max_size=3),
)
def test_runner_target_lists_hold_only_minion_ids(bad, good):
    with pytest.raises(runner.SaltInvocationError, match="tgt"):
        runner._check_args(_given(tgt=good + bad))  # pylint: disable=protected-access


@given(st.text(max_size=20))
def test_runner_target_types_are_salts(tgt_type):
    known = (
        "glob",
        "pcre",
        "list",
        "grain",
        "grain_pcre",
        "pillar",
        "pillar_pcre",
        "nodegroup",
        "range",
        "compound",
        "ipcidr",
    )
    if tgt_type in known:
        assert runner._check_args(_given(tgt_type=tgt_type))["tgt_type"] == tgt_type  # pylint: disable=protected-access
    else:
        with pytest.raises(runner.SaltInvocationError, match="tgt_type"):
            runner._check_args(_given(tgt_type=tgt_type))  # pylint: disable=protected-access


@given(st.one_of(st.text(max_size=40), hostile, st.builds(lambda b: "Dolphin_eXpressWare-5.26.0.sh" + b, hostile)))
def test_runner_sia_is_a_salt_url_or_an_absolute_path(sia):
    good = (sia.startswith("salt://") or sia.startswith("/")) and "\n" not in sia
    if good:
        assert runner._check_args(_given(sia=sia))["sia"] == sia  # pylint: disable=protected-access
    else:
        with pytest.raises(runner.SaltInvocationError, match="salt:// URL or an absolute path"):
            runner._check_args(_given(sia=sia))  # pylint: disable=protected-access


@given(st.one_of(hostile, st.builds(lambda b: "db1" + b, hostile.filter(NOT_NAME_CHAR.search))))
def test_runner_cluster_names_are_plain(cluster):
    with pytest.raises(runner.SaltInvocationError, match="cluster"):
        runner._check_args(_given(cluster=cluster))  # pylint: disable=protected-access


@given(
    st.lists(st.from_regex(r"\Anode[0-9]{1,2}\Z"), min_size=1, max_size=8, unique=True),
    st.data(),
    st.sampled_from(["name", "reverse"]),
)
def test_node_order_is_a_permutation_led_by_the_given_order(minions, data, sort):
    order = data.draw(st.lists(st.sampled_from(minions), unique=True, max_size=len(minions)))
    result = rollout.order_nodes(minions, order, sort)
    assert sorted(result) == sorted(minions)
    assert result[: len(order)] == order
    rest = result[len(order) :]
    assert rest == sorted(rest, reverse=(sort == "reverse"))


@given(st.lists(st.from_regex(r"\Anode[0-9]{1,2}\Z"), min_size=1, max_size=5, unique=True), st.text(min_size=1))
def test_node_order_refuses_unknown_or_repeated_minions(minions, stranger):
    assume(stranger not in minions)
    with pytest.raises(rollout.RolloutError, match="not targeted"):
        rollout.order_nodes(minions, [minions[0], stranger])
    with pytest.raises(rollout.RolloutError, match="twice"):
        rollout.order_nodes(minions, [minions[0], minions[0]])
