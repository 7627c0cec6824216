"""The payoff of the injected I/O: the real driver walks a simulated cluster (``tests/unit/simulation.py``) under
thousands of seeded schedules, each crashed at every step boundary and resumed; the invariants hold in all.

Replay one schedule exactly: ``SIM_SEED=<seed> SIM_CRASH=<save number, or none> pytest tests/unit/test_simulation.py``
(the failure message prints both). ``SIM_SEEDS`` (default 100) and ``SIM_BASE`` (default 0) choose the seeds
explored: ``SIM_BASE=5000 SIM_SEEDS=1000`` explores others.
"""

import os
import time

from tests.unit import simulation

#: What was explored, for the terminal summary (tests/unit/conftest.py).
EXPLORED = {}


def _replay(seed, crash):
    return f"SIM_SEED={seed} SIM_CRASH={crash if crash is not None else 'none'} pytest tests/unit/test_simulation.py"


def test_every_schedule_and_every_crash_point_keeps_the_invariants():
    if "SIM_SEED" in os.environ:
        crash = os.environ.get("SIM_CRASH", "none")
        seeds, crashes = [int(os.environ["SIM_SEED"])], ([None] if crash == "none" else [int(crash)])
    else:
        base, count = int(os.environ.get("SIM_BASE", "0")), int(os.environ.get("SIM_SEEDS", "100"))
        seeds, crashes = range(base, base + count), None
    started = time.monotonic()
    schedules = crash_points = resumes = 0
    failures = []
    for seed in seeds:
        try:
            saves, _ = simulation.simulate(seed)
        except Exception as exc:  # pylint: disable=broad-except  # a violation, or the driver broke
            failures.append((seed, None, exc))
            continue
        schedules += 1
        for crash in crashes if crashes is not None else range(1, saves + 1):
            if crash is None:
                continue
            try:
                _, drivers = simulation.simulate(seed, crash)
            except Exception as exc:  # pylint: disable=broad-except  # a violation, or the driver broke
                failures.append((seed, crash, exc))
                continue
            schedules, crash_points, resumes = schedules + 1, crash_points + 1, resumes + drivers - 1
    seconds = time.monotonic() - started
    EXPLORED.update(
        schedules=schedules + len(failures),
        crash_points=crash_points,
        resumes=resumes,
        seeds=f"{seeds[0]}..{seeds[-1]}",
        seconds=round(seconds, 1),
        failures=len(failures),
    )
    print(f"simulation: {EXPLORED}")
    assert not failures, "\n".join(
        f"seed {seed}, crash after save {crash}: {exc}\n  replay: {_replay(seed, crash)}"
        for seed, crash, exc in failures[:10]
    )
    assert crashes is not None or crash_points >= 1500, EXPLORED


def test_a_violation_is_caught():
    # The checks can fail: a driver that takes a second node down is seen at once.
    rng_cluster = simulation.Cluster(simulation.random.Random(1), ["node1", "node2"])
    rng_cluster.go_down(rng_cluster.nodes["node1"])
    try:
        rng_cluster.go_down(rng_cluster.nodes["node2"])
    except simulation.Violation as exc:
        assert "node2 goes down while node1 is down" in str(exc)
    else:
        raise AssertionError("two members down went unnoticed")
