"""``sia.receive_rpms``: how the rolling runner stages built RPMs (one publish for every node)."""

import base64
import hashlib

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from expressware_sim import write_sia
from tests.conftest import NEW, changing_commands
from tests.functional.test_bad_input import HOSTILE, HUGE, short

PX = "Dolphin-PX-5.26.0-1.x86_64.rpm"
SISCI = "Dolphin-SISCI-5.26.0-1.x86_64.rpm"


def piece(name, data, append=False):
    return {"name": name, "data": base64.b64encode(data).decode(), "append": append}


def test_pieces_are_written_appended_and_digested(modules, node):
    big = bytes(range(256)) * 40
    first = modules.sia.receive_rpms([piece(PX, big[:5000]), piece(SISCI, b"sisci")], clear=True)
    second = modules.sia.receive_rpms([piece(PX, big[5000:], append=True)])
    directory = node.workdir / "node_RPMS"
    assert first["directory"] == second["directory"] == str(directory)
    assert first["written"] == [PX, SISCI] and second["written"] == [PX]
    assert (directory / PX).read_bytes() == big
    assert second["sha256"] == {PX: hashlib.sha256(big).hexdigest(), SISCI: hashlib.sha256(b"sisci").hexdigest()}
    # The staged RPMs are what the state and the installer see.
    assert modules.expressware.staged_rpms()["rpms"] == [PX, SISCI]
    assert changing_commands(node) == []  # files only: no command ran on the node


def test_clear_removes_the_rpms_of_an_earlier_rollout(modules, node):
    old = "Dolphin-PX-5.25.2-1.x86_64.rpm"
    modules.sia.receive_rpms([piece(old, b"old")], clear=True)
    (node.workdir / "frontend_RPMS").mkdir()
    ret = modules.sia.receive_rpms([piece(PX, b"new")], clear=True)
    assert sorted(ret["sha256"]) == [PX]
    assert not (node.workdir / "frontend_RPMS").exists()
    assert modules.expressware.staged_rpms()["versions"] == ["5.26.0"]


BAD_PIECES = [
    ("not a list", "files must be a list"),
    ({"name": PX, "data": "", "append": False}, "files must be a list"),
    ([PX], "each piece of files must be"),
    ([{"name": PX, "data": ""}], "each piece of files must be"),
    ([{"name": PX, "data": "", "append": False, "mode": "0777"}], "each piece of files must be"),
    ([{"name": "x.rpm", "data": "", "append": False}], "is not the file name of an eXpressWare RPM"),
    ([{"name": "../" + PX, "data": "", "append": False}], "is not the file name of an eXpressWare RPM"),
    ([{"name": "/etc/" + PX, "data": "", "append": False}], "is not the file name of an eXpressWare RPM"),
    ([{"name": 5, "data": "", "append": False}], "is not the file name of an eXpressWare RPM"),
    ([{"name": PX, "data": "not base64!", "append": False}], "is not base64"),
    ([{"name": PX, "data": 5, "append": False}], "is not base64"),
    ([{"name": PX, "data": "", "append": "yes"}], "append must be True or False"),
] + [([{"name": hostile, "data": "", "append": False}], "is not the file name") for hostile in HOSTILE + [HUGE]]


@pytest.mark.parametrize("files, message", BAD_PIECES, ids=short)
def test_bad_pieces_write_nothing(modules, node, files, message):
    modules.sia.receive_rpms([piece(SISCI, b"staged before")], clear=True)
    before = sorted(p.name for p in (node.workdir / "node_RPMS").iterdir())
    # A good piece first: nothing of a call is written unless all of it is good.
    files = [piece(PX, b"good"), *files] if isinstance(files, list) else files
    with pytest.raises(SaltInvocationError, match=message):
        modules.sia.receive_rpms(files, clear=True)
    assert sorted(p.name for p in (node.workdir / "node_RPMS").iterdir()) == before  # not even cleared


@pytest.mark.parametrize("clear", ["True", 1, None])
def test_clear_must_be_a_boolean(modules, node, clear):
    with pytest.raises(SaltInvocationError, match="clear must be True or False"):
        modules.sia.receive_rpms([piece(PX, b"x")], clear=clear)
    assert not (node.workdir / "node_RPMS" / PX).exists()


@pytest.mark.parametrize("clear", [False, True])
def test_build_clears_earlier_rpms_only_when_asked(modules, node, tmp_path, clear):
    # The build fails (missing kernel headers): what is left shows whether clear ran before it.
    modules.sia.receive_rpms([piece("Dolphin-PX-5.25.2-1.x86_64.rpm", b"earlier")], clear=True)
    node.set_fault("build-fails")
    with pytest.raises(CommandExecutionError, match="exit status"):
        modules.sia.build_rpm(str(write_sia(tmp_path, NEW)), clear=clear)
    assert modules.expressware.staged_rpms()["versions"] == ([] if clear else ["5.25.2"])
    node.clear_faults()
    built = modules.sia.build_rpm(str(write_sia(tmp_path, NEW)), clear=clear)
    assert "pushed" not in built  # push=False: nothing is sent anywhere
    assert modules.expressware.staged_rpms()["versions"] == [NEW]
