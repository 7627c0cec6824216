"""The expressware beacon through Salt's beacon loader: one event per node-state transition."""

import pytest
import salt.loader


@pytest.fixture
def beacon(loaders, minion_opts, node):
    context = {}
    beacons = salt.loader.beacons(minion_opts, functions=loaders.modules, context=context)
    return beacons["expressware.beacon"], beacons["expressware.validate"]


def test_validate(beacon):
    _, validate = beacon
    assert validate([{"interval": 10}])[0] is True
    assert validate([])[0] is True
    assert validate({"interval": 10})[0] is False
    assert validate([{"pattern": "x"}])[0] is False


def test_fires_on_start_and_on_every_transition_only(beacon, modules, node):
    fire, _ = beacon
    first = fire([])
    assert [e["tag"] for e in first] == ["active"] and first[0]["previous"] is None
    assert fire([]) == []  # no change, no event

    modules.dis_services.stop()
    events = fire([])
    assert [(e["tag"], e["previous"]) for e in events] == [("inactive", "active")]
    assert "services not running" in events[0]["node_state"]["reasons"][0]
    assert fire([]) == []

    modules.dis_services.start()
    modules.expressware.wait_active(timeout=10, fire_event=False)
    assert [e["tag"] for e in fire([])] == ["active"]


def test_tools_that_fail_count_as_inactive(beacon, node, modules):
    fire, _ = beacon
    fire([])
    node.dis_services.chmod(0o644)
    events = fire([])
    assert events[0]["tag"] == "inactive" and "not executable" in events[0]["node_state"]["reasons"][0]
