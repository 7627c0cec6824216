"""Shared pure-Python code of saltext.expressware.

Salt loads extension ``utils`` neither through entry points nor in a way a
loader module can import by name, so every loader module (``_modules``,
``_states``, ``_runners``, ``_beacons``) loads the files of this directory by
path with its small ``_shared()`` helper. The directory is always beside the
loader module's own: ``saltext/expressware/utils`` for a pip install,
``extmods/utils`` after ``saltutil.sync_all``, ``_utils`` in a source tree used
through ``module_dirs``.

- ``expressware_vendor``: versions, vendor-tool output formats, release-notes rules; its parts
  ``expressware_vendor_versions`` (the version grammar, versions in RPM and installer names),
  ``expressware_vendor_output`` (the parsers of ``dis_services``, ``dis_diag`` and ``rpm`` output)
- ``expressware_exec``: how vendor tools are run on a minion
- ``expressware_args``: the argument checks of every entry point, and a refusal's exit status
- ``expressware_protocol``: event tags, the gate token, event payloads (the wire protocol)
- ``expressware_rollout``: the rolling update as plain data (next step, record); ``expressware_rollout_plan``: the plan
- ``expressware_rollback``: rollback from the record (which nodes, their order back, the old version and installer)
- ``expressware_runner``: the rolling runner's wiring to the master (records, a driver wired to Salt, the bus), and each
  runner function's work with them once its arguments are checked
- ``expressware_rollout_args``: ``rolling.update``/``plan``'s arguments as a whole; ``rolling.report``'s target,
  ``rolling.list``'s and ``rolling.rollback``'s arguments
- ``expressware_watch``: what a node's events mean while the runner waits for it (plain data)
- ``expressware_driver``: the rolling runner's walk, its I/O injected; its parts ``expressware_driver_preflight``,
  ``expressware_driver_health`` (the cluster health gate), ``expressware_driver_waits`` (window, long waits),
  ``expressware_driver_node`` (one node's update: go or publish, its events watched until it is back)
- ``expressware_gates``, ``expressware_staging``: the runner's side of the gates; builds and staging
- ``expressware_gate_wait``: the node's side of the gates (the state's prepared job waiting at its gate for the go)
- ``expressware_node``: a node judged from its tools, for the execution module (one look: its state with the
  evidence; the update decision, a rollback's downgrade); ``expressware_notify``: the Network Manager notification
  script's last cluster-state report, read
- ``expressware_salt``: the rolling runner's one door to Salt (bounded calls, one failure policy)
- ``expressware_store``: the update leases and rollout records (local, or in a store two masters share), a driver's lock
- ``expressware_fleet``: fleets as plain data (grouping by cluster, waves, which cluster may start, what a halt
  stops, the fleet's record); ``expressware_fleet_run``: one driver per cluster in threads, one build per group
- ``expressware_requests``: update requests (who may ask, their limits, the master's request store)
- ``expressware_health``: the cluster's health as the runner sees it (members, frontend state, go/hold/halt)
- ``expressware_window``: maintenance windows and the long-wait notes (plain data, the clock passed in)
- ``expressware_report``: the picture of a rollout (HTML/SVG) and the rows of ``rolling.list``; its parts
  ``expressware_report_facts`` (timeline and figures as plain data), ``expressware_report_svg`` (the SVG timeline)

A shared module loads another with its ``_sibling()``, under the key ``_shared()`` uses (one module object).
"""
