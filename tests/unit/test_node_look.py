"""One look at a node (``expressware_node.look``): its tools at once when asked, each run once, and the same
judgement whichever way they ran."""

import threading
import time

from tests.shared_code import load

node_lib = load("expressware_node")

RUNNING = {"running_version": "5.26.0", "services": {"dis_irm": {"label": "IRM", "running": True}}}
STOPPED = {"running_version": None, "services": {"dis_irm": {"label": "IRM", "running": False}}}
PASSED = {"passed": True, "lines": ["all links up"]}


class Tools:
    """Stand-in tools that each take ``seconds``, counting their runs and how many ran at once."""

    def __init__(self, seconds, status=RUNNING, version="5.26.0"):
        self.seconds, self.answer, self.version_answer = seconds, status, version
        self.runs = {"status": 0, "diag": 0, "version": 0}
        self.at_once = self.most_at_once = 0
        self.lock = threading.Lock()

    def _run(self, name, answer):
        with self.lock:
            self.runs[name] += 1
            self.at_once += 1
            self.most_at_once = max(self.most_at_once, self.at_once)
        time.sleep(self.seconds)
        with self.lock:
            self.at_once -= 1
        return answer

    def status(self):
        return self._run("status", self.answer)

    def diag(self):
        return self._run("diag", PASSED)

    def installed(self):
        return self._run("version", self.version_answer)


def test_together_the_look_takes_its_slowest_tool_not_their_sum():
    tools = Tools(0.3)
    started = time.monotonic()
    state = node_lib.look(tools.status, tools.diag, tools.installed, together=True)
    took = time.monotonic() - started
    assert state["active"] and state["installed"] == "5.26.0" and state["running"] == "5.26.0"
    assert tools.runs == {"status": 1, "diag": 1, "version": 1} and tools.most_at_once == 3
    assert took < 0.6  # one after the other: 0.9 s

    tools = Tools(0.1)
    apart = node_lib.look(tools.status, tools.diag, tools.installed)
    assert apart == state and tools.most_at_once == 1 and tools.runs == {"status": 1, "diag": 1, "version": 1}


def test_a_node_with_no_version_installed_is_read_once_and_judged_alike():
    for together in (False, True):
        tools = Tools(0.01, status=STOPPED, version=None)
        state = node_lib.look(tools.status, tools.diag, tools.installed, quick=True, together=together)
        assert state["installed"] is None and not state["active"] and state["diag"] is None
        assert tools.runs["version"] == 1 and tools.runs["status"] == 1
        assert state["reasons"] == ["services not running: IRM"]
