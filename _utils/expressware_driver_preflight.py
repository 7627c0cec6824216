"""The rolling driver's pre-flight: every targeted node asked what it would do, the frontend checked, the
cluster's other members looked at; a list of problems, and nothing touched.

A mixin of ``expressware_driver.Driver`` (its ``salt``, ``args``, ``say`` and the health gate's
``preflight_health``).
"""

import importlib.util
import os
import sys


def _sibling(name):
    """Another module of this directory: the same module object the loader modules' ``_shared()`` gives."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


plan_lib = _sibling("expressware_rollout")

#: Seconds to wait, at the pre-flight, on a minion asked again (it did not answer).
PREFLIGHT_RETRY = 5


def problems_report(problems):
    return {
        "status": "refused",
        "comment": "pre-flight failed; nothing was touched",
        "problems": {(minion or "target"): problem for minion, problem in problems},
        "retcode": 1,
    }


class Preflight:
    """The pre-flight of a :class:`expressware_driver.Driver`."""

    def preflight(self):
        args, opts = self.args, self.args["options"]
        self.say(f"pre-flight of {args['tgt']!r} ({args['tgt_type']}) for {args['version']}")
        kwarg = {"sia": args["sia"], "enforce": opts["enforce"]}
        if opts["compat"] is not None:
            kwarg["compat"] = opts["compat"]
        if opts.get("downgrade_from"):  # a rollback: the downgrade from exactly this version
            kwarg["downgrade_from"] = opts["downgrade_from"]
        asked = self.salt.time()
        facts = self.salt.call(
            args["tgt"],
            "expressware.preflight",
            [args["version"]],
            kwarg,
            tgt_type=args["tgt_type"],
            timeout=args["timeout"],
        )
        silent = sorted(minion for minion, fact in facts.items() if plan_lib.did_not_answer(fact))
        if silent:
            # A job published to a minion whose link to the publisher is not back yet (after a master restart it
            # reconnects with a back-off of seconds) is lost without a trace: ask those once more, briefly.
            self.say(f"pre-flight: no answer from {', '.join(silent)}; asking once more")
            again = self.salt.call(
                silent, "expressware.preflight", [args["version"]], kwarg, tgt_type="list", timeout=PREFLIGHT_RETRY
            )
            facts.update({minion: again[minion] for minion in silent if not plan_lib.did_not_answer(again.get(minion))})
        problems = plan_lib.preflight_problems(
            set(facts), facts, args["version"], may_be_down=opts.get("may_be_down") or ()
        )
        todo = [m for m, f in facts.items() if isinstance(f, dict) and f.get("decision", {}).get("action") != "none"]
        if not problems and todo and not args["sia"]:
            problems.append((None, f"{len(todo)} node(s) need {args['version']} but no sia was given"))
        if opts["frontend"] and not problems:
            problem = self.preflight_frontend(opts["frontend"])
            if problem:
                problems.append((opts["frontend"], problem))
        if not problems:
            problems.extend(self.preflight_health(facts, asked))
        for minion, problem in problems:
            self.say(f"pre-flight: {minion or 'target'}: {problem}")
        return facts, problems

    def preflight_frontend(self, minion):
        """Check the Cluster Management Node before anything is touched; the problem, or None."""
        args = self.args
        answer = self.salt.call(
            [minion],
            "expressware.frontend_preflight",
            [args["version"]],
            {"sia": args["sia"], "enforce": args["options"]["enforce"]},
            timeout=args["timeout"],
        ).get(minion)
        if not isinstance(answer, dict):
            return "the frontend minion did not answer" if not answer else f"frontend pre-flight failed: {answer}"
        self.frontend_fact = answer
        if answer.get("error"):
            return f"frontend: {answer['error']}"
        if answer["decision"]["action"] == "refuse":
            return f"frontend: {answer['decision']['reason']}"
        if answer.get("sia_error"):
            return f"frontend: installer not reachable: {answer['sia_error']}"
        return None
