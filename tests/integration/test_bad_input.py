"""``salt-run rolling.update`` refuses bad arguments before anything is touched.

Every argument fed a wrong type, an empty value, a huge value or a hostile string
(as an operator would type them: Salt's CLI reads ``key=value`` as YAML). The
refusal names the argument, the exit status is non-zero, and nothing happened:
no command that could change a node ran on any node, the cluster's update lease
was not taken, and no rollout was recorded.

The execution modules' checks are in ``tests/functional/test_bad_input.py``;
``test_rolling.py::test_bad_arguments_are_refused_before_anything`` has the first few.
"""

import os

import pytest

from tests.conftest import NEW, changing_commands
from tests.integration.rollouts import update_args

HUGE = "9" * 100_000


CASES = [
    # version
    ({"version": ""}, "version '' is not an eXpressWare version"),
    ({"version": "5.26.0;rm -rf /"}, "is not an eXpressWare version"),
    ({"version": "'$(reboot)'"}, "version '$(reboot)' is not an eXpressWare version"),
    ({"version": "`reboot`"}, "is not an eXpressWare version"),
    ({"version": "'--enforce'"}, "version '--enforce' is not an eXpressWare version"),
    ({"version": "../5.26.0"}, "is not an eXpressWare version"),
    ({"version": "5.26"}, "quote it if YAML made it a number"),
    ({"version": [5, 26, 0]}, "is not an eXpressWare version"),
    ({"version": HUGE}, "is not an eXpressWare version"),
    # tgt, tgt_type
    ({"tgt": "''"}, "tgt must be a target expression"),
    ({"tgt": []}, "tgt must be a target expression or a list of minion ids"),
    ({"tgt": ["node1", ""]}, "tgt must be a target expression or a list of minion ids"),
    ({"tgt": '"node1\\nnode2"'}, "tgt must be a target expression"),
    ({"tgt_type": "shell"}, "tgt_type must be one of"),
    ({"tgt_type": "'$(reboot)'"}, "tgt_type must be one of"),
    # sia
    ({"sia": f"Dolphin_eXpressWare-{NEW}.sh"}, "sia must be a salt:// URL or an absolute path"),
    ({"sia": "'`reboot`'"}, "sia must be a salt:// URL or an absolute path"),
    ({"sia": '"/tmp/x\\n/etc"'}, "sia must be a salt:// URL or an absolute path"),
    ({"sia": 5}, "sia must be a salt:// URL or an absolute path"),
    # flags
    ({"reboot": "maybe"}, "reboot must be True or False"),
    ({"enforce": "'--enforce'"}, "enforce must be True or False"),
    ({"build": 0}, "build must be True or False"),
    # lists of names
    ({"applications": [""]}, "applications must be a list of service names"),
    ({"applications": [1]}, "applications must be a list of service names"),
    ({"order": "node1"}, "order must be a list of minion ids"),
    ({"sort": "random"}, "sort must be 'name' or 'reverse'"),
    ({"canary": -1}, "canary must be a whole number"),
    ({"canary": True}, "canary must be a whole number"),
    ({"frontend": []}, "frontend must be a minion id"),
    # cluster: becomes a file name on the master
    ({"cluster": "a;rm -rf /"}, "cluster 'a;rm -rf /' must be 1-64 letters"),
    ({"cluster": "'--enforce'"}, "cluster '--enforce' must be 1-64 letters"),
    ({"cluster": "x" * 65}, "must be 1-64 letters"),
    # release-notes data
    ({"compat": "yes"}, "compat must be a mapping"),
    ({"compat": {"incompatible": ["$(reboot)"]}}, "'$(reboot)' is not an eXpressWare version"),
    ({"compat": {"rolling": "5.26.0"}}, "compat:rolling must be a list"),
    # seconds
    ({"node_timeout": 0}, "node_timeout must be a number of seconds"),
    ({"node_timeout": '"60"'}, "node_timeout must be a number of seconds"),
    ({"node_timeout": 10**12}, "node_timeout must be a number of seconds"),
    ({"timeout": -5}, "timeout must be a number of seconds"),
    ({"progress_every": 0}, "progress_every must be between 1 and"),
    ({"progress_every": "often"}, "progress_every must be a number of seconds"),
]


def _leases(cache):
    directory = os.path.join(cache, "leases")
    if not os.path.isdir(directory):
        return {}
    return {
        name: open(os.path.join(directory, name), encoding="utf-8").read()  # pylint: disable=consider-using-with
        for name in os.listdir(directory)
        if name.endswith(".json")
    }


def _id(case):
    text = ",".join(f"{k}={v!r}" for k, v in case.items())
    return text if len(text) <= 40 else text[:30] + f"...({len(text)})"


@pytest.mark.parametrize("bad, message", CASES, ids=[_id(bad) for bad, _ in CASES])
def test_runner_refuses_bad_arguments_before_anything(master, salt_run_cli, nodes, bad, message):
    cache = os.path.join(master.config["cachedir"], "expressware")
    rollouts = os.path.join(cache, "rollouts")
    records = sorted(os.listdir(rollouts)) if os.path.isdir(rollouts) else []
    leases = _leases(cache)
    before = {node_id: changing_commands(node) for node_id, node in nodes.items()}
    ret = salt_run_cli.run("rolling.update", *update_args(**bad), _timeout=60)
    assert ret.returncode == 1, ret
    assert ret.data["status"] == "refused", ret.data
    assert message in ret.data["comment"], ret.data["comment"][:500]
    assert {node_id: changing_commands(node) for node_id, node in nodes.items()} == before
    assert _leases(cache) == leases  # no lease taken (or released)
    assert (sorted(os.listdir(rollouts)) if os.path.isdir(rollouts) else []) == records  # nothing recorded
