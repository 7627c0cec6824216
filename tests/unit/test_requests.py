"""Update requests: who asks, the allow-list and its limits, the request store's take-once.

The same code on real daemons (a minion's own events, salt-run rolling.request, an
allowed minion through publish.runner): ``tests/integration/test_requests.py``.
"""

import os
import threading

import pytest

from tests.shared_code import load

requests = load("expressware_requests")

NEW = "5.26.0"


def checked(tgt="node1", tgt_type="glob", version=NEW, cluster="default", sia=None, **options):
    """The normalised arguments as rolling.update's validation returns them."""
    opts = {
        "reboot": False,
        "enforce": False,
        "applications": [],
        "node_timeout": 1800,
        "compat": None,
        "canary": 0,
        "frontend": None,
        "build": True,
    }
    opts.update(options)
    return {
        "tgt": tgt,
        "tgt_type": tgt_type,
        "version": version,
        "sia": sia or requests.default_sia(version),
        "cluster": cluster,
        "order": None,
        "sort": "name",
        "timeout": 60,
        "options": opts,
    }


LIMITS = {
    "targets": ["db1-*", {"tgt": "G@cluster:db1", "tgt_type": "compound"}],
    "versions": ["5.26.*"],
    "clusters": ["db1"],
    "applications": ["ndbmtd"],
}


# -- who asks -------------------------------------------------------------------------------------------------------


def test_the_caller_is_a_minion_only_with_an_accepted_key(tmp_path):
    (tmp_path / "minions").mkdir()
    (tmp_path / "minions" / "node1").write_text("key")
    assert requests.caller({"id": "node1", "pki_dir": str(tmp_path)}) == "node1"
    assert requests.caller({"id": "host_master", "pki_dir": str(tmp_path)}) is None
    assert requests.caller({"id": "../minions/node1", "pki_dir": str(tmp_path)}) is None
    assert requests.caller({"pki_dir": str(tmp_path)}) is None


def test_a_claimed_id_is_named_as_unverified():
    assert requests.claimed_requester({"id": "node1", "data": {}}) == "node1"
    assert requests.claimed_requester({"tgt": "*"}) is None
    assert requests.claimed_requester("x") is None
    assert requests.describe_claim("node1") == "node1 (claimed, unverified)"
    assert "names no id" in requests.describe_claim(None)


# -- the allow-list -------------------------------------------------------------------------------------------------


def test_entries_match_ids_and_globs():
    allow = {"ops1": {"targets": ["x"]}, "ops*": {"targets": ["y"]}, "db1-*": {"targets": ["z"]}}
    assert requests.limits_for("ops1", allow) == [{"targets": ["x"]}, {"targets": ["y"]}]
    assert requests.limits_for("ops2", allow) == [{"targets": ["y"]}]
    assert requests.limits_for("node1", allow) == []
    assert requests.limits_for("OPS1", allow) == []  # ids are case-sensitive


@pytest.mark.parametrize(
    "allow, message",
    [
        (["ops1"], "must be a mapping"),
        ({"ops1": ["db1-*"]}, "must be a mapping of limits"),
        ({"ops1": {"target": ["db1-*"]}}, "unknown limit(s) target"),
        ({"ops1": {"targets": [{"tgt": "db1-*", "type": "glob"}]}}, "each target is"),
        ({"ops1": {"targets": ["db1-*"], "versions": "5.26.*"}}, "versions must be a list"),
        ({"ops1": {"targets": ["db1-*"], "options": ["canary"]}}, "'canary' is not one of"),
    ],
)
def test_a_malformed_allow_list_is_an_error_not_a_wider_rule(allow, message):
    with pytest.raises(requests.RequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        requests.allow_entries({"expressware": {"reactor": {"allow": allow}}})


def test_no_allow_list_allows_no_minion():
    assert requests.allow_entries({}) == {}
    with pytest.raises(requests.RequestError, match="no expressware:reactor:allow entry names it"):
        requests.authorize("node1", checked(), {})


def test_the_master_may_ask_for_anything():
    requests.authorize(None, checked(tgt="*", reboot=True, enforce=True), {})


# -- limits ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        checked(tgt="db1-n1", cluster="db1"),
        checked(tgt=["db1-n1", "db1-n2"], tgt_type="list", cluster="db1"),
        checked(tgt="db1-n1,db1-n2", tgt_type="list", cluster="db1"),
        checked(tgt="db1-*", cluster="db1"),  # the allowed glob itself
        checked(tgt="G@cluster:db1", tgt_type="compound", cluster="db1"),
        checked(tgt="db1-n1", cluster="db1", version="5.26.1", applications=["ndbmtd"]),
    ],
)
def test_requests_within_the_limits(args):
    assert requests.limit_problems(args, LIMITS) == []


@pytest.mark.parametrize(
    "args, problem",
    [
        (checked(tgt="db2-n1", cluster="db1"), "target 'db2-n1' (glob) is not among the allowed targets"),
        (checked(tgt="*", cluster="db1"), "target '*'"),
        (checked(tgt="db1-n*", cluster="db1"), "target 'db1-n*'"),  # a narrower-looking glob is not decided from text
        (checked(tgt="db1-* or G@x:y", tgt_type="compound", cluster="db1"), "target"),
        (checked(tgt="G@cluster:db1", tgt_type="grain", cluster="db1"), "target"),
        (checked(tgt=["db1-n1", "db2-n1"], tgt_type="list", cluster="db1"), "target"),
        (checked(tgt="db1-.*", tgt_type="pcre", cluster="db1"), "target"),
        (checked(tgt="db1-n1", cluster="db1", version="5.27.0"), "version 5.27.0 is not among the allowed versions"),
        (checked(tgt="db1-n1", cluster="db2"), "cluster db2 is not among the allowed clusters"),
        (checked(tgt="db1-n1", cluster="db1", reboot=True), "reboot is not among the allowed options"),
        (checked(tgt="db1-n1", cluster="db1", enforce=True), "enforce is not among the allowed options"),
        (checked(tgt="db1-n1", cluster="db1", frontend="fe1"), "frontend is not among the allowed options"),
        (checked(tgt="db1-n1", cluster="db1", compat={"rolling": []}), "compat is not among the allowed options"),
        (checked(tgt="db1-n1", cluster="db1", sia="/tmp/x.sh"), "'sia' is not among the allowed options"),
        (checked(tgt="db1-n1", cluster="db1", applications=["sshd"]), "application(s) sshd not among"),
    ],
)
def test_requests_beyond_the_limits(args, problem):
    problems = requests.limit_problems(args, LIMITS)
    assert any(problem in p for p in problems), problems


def test_options_listed_are_allowed_and_clusters_default_to_default():
    limits = {"targets": ["node*"], "versions": ["*"], "options": ["reboot", "enforce"]}
    assert requests.limit_problems(checked(reboot=True, enforce=True), limits) == []
    assert requests.limit_problems(checked(cluster="db1"), limits) == ["cluster db1 is not among the allowed clusters"]


def test_missing_targets_or_versions_allow_nothing():
    assert len(requests.limit_problems(checked(), {})) == 2


def test_one_matching_entry_is_enough_and_a_refusal_names_the_requester():
    allow = {"ops*": {"targets": ["db2-*"], "versions": ["*"]}, "ops1": {"targets": ["db1-*"], "versions": ["*"]}}
    requests.authorize("ops1", checked(tgt="db1-n1"), allow)
    with pytest.raises(requests.RequestError, match=r"^the request of ops2 is beyond its limits: target"):
        requests.authorize("ops2", checked(tgt="db1-n1"), allow)


# -- the store ------------------------------------------------------------------------------------------------------


def test_a_request_is_taken_once(tmp_path):
    store = requests.RequestStore(str(tmp_path))
    record = store.put("master", {"tgt": "*", "version": NEW})
    taken = store.take(record["id"])
    assert taken["args"] == {"tgt": "*", "version": NEW} and taken["requester"] == "master"
    with pytest.raises(requests.RequestError, match="already taken"):
        store.take(record["id"])
    assert store.get(record["id"])["taken"] >= record["created"]


def test_an_unknown_or_malformed_id_is_refused(tmp_path):
    store = requests.RequestStore(str(tmp_path))
    with pytest.raises(requests.RequestError, match="no request .* was recorded"):
        store.take("20261201T000000-0123456789abcdef")
    for bad in (None, 5, "", "../../etc/passwd", "20261201T000000-0123456789abcdef/../x", {"id": "x"}):
        with pytest.raises(requests.RequestError, match="is not a request id"):
            store.take(bad)


def test_an_old_request_expires(tmp_path):
    now = [1000.0]
    store = requests.RequestStore(str(tmp_path), clock=lambda: now[0], ttl=600)
    record = store.put("master", {})
    now[0] += 601
    with pytest.raises(requests.RequestError, match="expired"):
        store.take(record["id"])
    with pytest.raises(requests.RequestError, match="expired"):  # and stays so
        store.take(record["id"])


def test_requests_nobody_took_are_swept_when_a_new_one_is_made(tmp_path):
    now = [1000.0]
    store = requests.RequestStore(str(tmp_path), clock=lambda: now[0], ttl=600)
    old = store.put("master", {})
    now[0] += 601
    new = store.put("master", {})
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [new["id"] + ".json"]
    assert store.get(old["id"])["expired"] is True
    with pytest.raises(requests.RequestError, match="expired"):
        store.take(old["id"])
    assert store.take(new["id"])["id"] == new["id"]


def test_of_many_concurrent_takers_exactly_one_wins(tmp_path):
    store = requests.RequestStore(str(tmp_path))
    for _ in range(20):
        record = store.put("master", {"n": 1})
        wins, losses = [], []
        barrier = threading.Barrier(8)

        def taker(request_id=record["id"], barrier=barrier, wins=wins, losses=losses):
            barrier.wait()
            try:
                wins.append(requests.RequestStore(str(tmp_path)).take(request_id))
            except requests.RequestError as exc:
                losses.append(str(exc))

        threads = [threading.Thread(target=taker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 1 and len(losses) == 7, (wins, losses)


# -- the two runner functions as plain code -------------------------------------------------------------------------


@pytest.fixture
def master(tmp_path):
    (tmp_path / "pki" / "minions").mkdir(parents=True)
    (tmp_path / "pki" / "minions" / "node1").write_text("key")
    return {
        "id": "host_master",
        "pki_dir": str(tmp_path / "pki"),
        "cachedir": str(tmp_path / "cache"),
        "reactor": [{requests.REQUEST_TAG: ["/srv/reactor/rolling_update.sls"]}],
    }


def _check(given):
    if not isinstance(given["version"], str):
        raise requests.RequestError("not an eXpressWare version")
    args = checked(
        tgt=given["tgt"],
        version=given["version"],
        cluster=given.get("cluster") or "default",
        reboot=given.get("reboot", False),
    )
    return dict(args, sia=given.get("sia"))  # None when not given, as update's validation returns it


PARAMS = ["tgt", "version", "sia", "tgt_type", "reboot", "cluster", "progress"]


def test_the_master_requests_and_the_reactor_takes_once(master):
    fired, started = [], []
    ret = requests.make_request(
        master,
        {"tgt": "*", "version": NEW, "__pub_user": "root"},
        PARAMS,
        _check,
        lambda tag, data: fired.append((tag, data)),
    )
    assert ret["status"] == "requested" and ret["requester"] == "master"
    assert fired == [(requests.REQUEST_TAG, {"request": ret["request"]})]  # the id alone on the bus
    result = requests.take_request(
        master,
        ret["request"],
        None,
        lambda args: started.append(args) or {"status": "done"},
        lambda tag, data: fired.append((tag, data)),
    )
    assert result == {"status": "done", "request": ret["request"], "requester": "master"}
    assert started == [{"tgt": "*", "version": NEW, "sia": requests.default_sia(NEW)}]
    again = requests.take_request(master, ret["request"], "node1", started.append, lambda t, d: fired.append((t, d)))
    assert again["status"] == "refused" and len(started) == 1
    assert fired[-1][0] == requests.REFUSED_TAG and fired[-1][1]["requester"] == "node1"
    assert fired[-1][1]["verified"] is False and "node1 (claimed, unverified)" in fired[-1][1]["reason"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tgt": "*", "version": 5.26}, "not an eXpressWare version"),
        ({"version": NEW}, "needs tgt"),
        ({"tgt": "*", "version": NEW, "progress": True}, "no argument progress"),
        ({"tgt": "*", "version": NEW, "rm": "-rf"}, "no argument rm"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_recorded(master, kwargs, message):
    fired = []
    ret = requests.make_request(master, kwargs, PARAMS, _check, lambda tag, data: fired.append((tag, data)))
    assert ret["status"] == "refused" and message in ret["comment"] and ret["retcode"] == 1
    assert [tag for tag, _ in fired] == [requests.REFUSED_TAG]
    assert not os.path.exists(os.path.join(master["cachedir"], "expressware", "requests")) or not [
        n for n in os.listdir(os.path.join(master["cachedir"], "expressware", "requests")) if n.endswith(".json")
    ]


def test_without_the_reactor_a_request_is_refused(master):
    del master["reactor"]
    ret = requests.make_request(master, {"tgt": "*", "version": NEW}, PARAMS, _check, lambda t, d: None)
    assert ret["status"] == "refused" and "reactor does not react" in ret["comment"]


def test_a_minion_asks_within_its_limits_only(master):
    master["id"] = "node1"  # publish.runner from node1
    master["expressware"] = {"reactor": {"allow": {"node1": {"targets": ["node*"], "versions": ["5.26.*"]}}}}
    fired = []
    ok = requests.make_request(master, {"tgt": "node2", "version": NEW}, PARAMS, _check, lambda t, d: fired.append(d))
    assert ok["status"] == "requested" and ok["requester"] == "node1"
    beyond = requests.make_request(
        master, {"tgt": "node2", "version": NEW, "reboot": True}, PARAMS, _check, lambda t, d: fired.append(d)
    )
    assert beyond["status"] == "refused" and "reboot is not among the allowed options" in beyond["comment"]
    assert fired[-1] == {"requester": "node1", "verified": True, "reason": beyond["comment"]}
    # An argument of update no limit covers is the master's alone.
    other = requests.make_request(
        master, {"tgt": "node2", "version": NEW, "window": "x"}, PARAMS + ["window"], _check, lambda t, d: None
    )
    assert other["status"] == "refused" and "may not carry window" in other["comment"]
    # A minion does not take requests (the reactor does), not even its own.
    taken = requests.take_request(master, ok["request"], None, lambda args: pytest.fail("started"), lambda t, d: None)
    assert taken["status"] == "refused" and "may not take requests" in taken["comment"]


@pytest.mark.parametrize(
    "event_data",
    [
        {"tgt": "*", "version": NEW},  # the old request form, batched (no id)
        {"id": "node1", "tgt": "*", "version": NEW},  # an id claimed in a batched event
        {"id": "node1", "cmd": "_minion_event", "tag": requests.REQUEST_TAG, "data": {"request": "x"}},  # event.send
        {"request": "20261201T000000-0123456789abcdef"},  # a made-up id
        {"request": {"$ne": None}},
    ],
)
def test_an_event_without_a_recorded_request_starts_nothing(master, event_data):
    fired = []
    ret = requests.take_request(
        master,
        event_data.get("request"),
        requests.claimed_requester(event_data),
        lambda args: pytest.fail("started"),
        lambda tag, data: fired.append((tag, data)),
    )
    assert ret["status"] == "refused"
    ((tag, data),) = fired
    assert tag == requests.REFUSED_TAG and data["verified"] is False
    assert data["requester"] == event_data.get("id")
