"""Unit tests: what the deterministic simulation explored is said at the end of the run."""


def pytest_terminal_summary(terminalreporter):
    from tests.unit.test_simulation import EXPLORED  # pylint: disable=import-outside-toplevel

    if EXPLORED:
        terminalreporter.write_sep("-", "deterministic simulation")
        terminalreporter.write_line(
            f"{EXPLORED['schedules']} schedules (seeds {EXPLORED['seeds']}), {EXPLORED['crash_points']} crash points "
            f"explored, {EXPLORED['resumes']} resumes, {EXPLORED['failures']} failure(s), {EXPLORED['seconds']} s"
        )
