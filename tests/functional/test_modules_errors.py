"""Execution modules through Salt's loaders: answers, errors, and that bad input changes nothing."""

import os

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from expressware_sim import write_sia
from tests.conftest import NEW, OLD, changing_commands, fresh_node
from tests.privileges import PrefixedSaltCall, no_read_prefix


def test_stopped_service_is_an_answer_not_a_failed_job(modules, loaders, node):
    modules.dis_services.stop()
    status = modules.dis_services.status()
    assert status["all_running"] is False
    # cmd.run_all would have set the job's retcode to 3 (LSB "stopped").
    assert loaders.context.get("retcode", 0) == 0


def test_missing_prefix(modules, node, configure):
    configure("prefix", str(node.root / "nowhere"))
    with pytest.raises(CommandExecutionError, match=r"nowhere/sbin/dis_services not found"):
        modules.dis_services.status()


def test_non_executable_tool(modules, node):
    os.chmod(node.dis_services, 0o644)
    with pytest.raises(CommandExecutionError, match="is not executable"):
        modules.dis_services.status()


def test_unparseable_output(modules, node):
    node.dis_services.write_text("#!/bin/sh\necho 'Segmentation fault'\nexit 3\n")
    with pytest.raises(CommandExecutionError, match="cannot understand the output of dis_services status"):
        modules.dis_services.status()


def test_unparseable_rpm_output(modules, node, configure, tmp_path):
    fake = tmp_path / "rpm"
    fake.write_text("#!/bin/sh\necho 'error: rpmdb: BDB0113 Thread/process failed'\n")
    fake.chmod(0o755)
    configure("rpm", str(fake))
    with pytest.raises(CommandExecutionError, match="cannot understand the output of rpm"):
        modules.expressware.version()


def test_missing_rpm(modules, node, configure):
    configure("rpm", "no-such-rpm-binary")
    with pytest.raises(CommandExecutionError, match="no-such-rpm-binary"):
        modules.expressware.version()


def test_failed_start_names_services(modules, node):
    modules.dis_services.stop()
    node.set_fault("start-fails-until-reboot")
    with pytest.raises(CommandExecutionError, match="IRM driver") as err:
        modules.dis_services.start()
    first_line = str(err.value).splitlines()[0]
    assert "IRM driver" in first_line and "KOSIF driver" not in first_line


def test_install_refusals_change_nothing(modules, node, tmp_path):
    sia = write_sia(tmp_path, OLD)
    before = changing_commands(node)
    with pytest.raises(SaltInvocationError, match="reinstall"):
        modules.sia.install_node(str(sia))
    assert changing_commands(node) == before


def test_unreadable_installer_is_refused_and_changes_nothing(minion_factory, node, tmp_path):
    # In a salt-call process of its own: as root (CI) it runs without CAP_DAC_OVERRIDE
    # and CAP_DAC_READ_SEARCH (tests/privileges.py), so that the module's check meets
    # a really unreadable file; not root, chmod 000 is enough.
    unreadable = write_sia(tmp_path, NEW)
    unreadable.chmod(0)
    prefix = no_read_prefix(unreadable)
    salt_call = minion_factory.salt_call_cli(factory_class=PrefixedSaltCall, command_prefix=prefix, timeout=120)
    before = changing_commands(node)
    ret = salt_call.run("--local", "sia.install_node", str(unreadable))
    assert ret.returncode != 0, ret
    # salt-call's words for a SaltInvocationError, then the module's.
    assert f"Passed invalid arguments: installer {unreadable} is not readable" in ret.stderr, ret
    assert changing_commands(node) == before
    assert node.state()["installed_version"] == OLD


def test_failing_installer_surfaces_exit_status_and_stderr(modules, node, tmp_path):
    sia = write_sia(tmp_path, NEW, corrupt=True)
    with pytest.raises(CommandExecutionError, match=r"exit status \d+: .*(?i:checksum)"):
        modules.sia.install_node(str(sia))
    assert node.state()["installed_version"] == OLD


def test_failing_build(modules, node, tmp_path):
    node.set_fault("build-fails")
    with pytest.raises(CommandExecutionError, match="kernel"):
        modules.sia.build_rpm(str(write_sia(tmp_path, NEW)))


def test_use_rpms_must_hold_rpms(modules, node, tmp_path):
    with pytest.raises(SaltInvocationError, match="holds no RPM packages"):
        modules.sia.install_node(str(write_sia(tmp_path, NEW)), use_rpms=str(tmp_path))


@pytest.mark.parametrize("value", ["True", 1, "yes", None, [True]])
def test_flags_must_be_booleans(modules, node, tmp_path, value):
    with pytest.raises(SaltInvocationError, match="must be True or False"):
        modules.sia.install_node(str(write_sia(tmp_path, NEW)), enforce=value)


def test_node_state_evidence_while_link_trains(modules, node):
    # Links that train for 3 s, not the usual 0.4 s: on a loaded machine the look below may come later than that.
    fresh_node(node.root, "fnode", link_training=3)
    modules.dis_services.restart()
    state = modules.expressware.node_state()
    assert state["state"] == "inactive"
    assert state["diag"]["passed"] is False
    state = modules.expressware.wait_active(timeout=10, fire_event=False)
    assert state["state"] == "active"


def test_version_validation(modules, node):
    with pytest.raises(SaltInvocationError, match="quote it"):
        modules.expressware.validate_version(5.26)
    with pytest.raises(SaltInvocationError, match="not an eXpressWare version"):
        modules.expressware.check_update("latest")
    assert modules.expressware.check_update(NEW)["action"] == "install"
