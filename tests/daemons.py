"""Start and stop a package's Salt minion daemons side by side.

pytest-salt-factories' ``factory.started()`` starts one daemon and waits until it is up (its start event on the
master) before the next one starts: a package of 9 minions spent about a minute there, and its teardown stopped them
one after another too. Each daemon here is still started and stopped by its factory, only in threads of their own.
"""

import concurrent.futures


def _all(action, factories):
    """Run ``action(factory)`` for every factory at once; raise the first failure once all have ended."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(factories) or 1) as pool:
        futures = [pool.submit(action, factory) for factory in factories]
    for future in futures:
        future.result()


def start_minions(stack, factories):
    """Start every minion of ``factories`` at once and have ``stack`` (a ``contextlib.ExitStack``) stop them all
    at once when it closes, also when one of them did not start (the others are stopped)."""
    stack.callback(_all, lambda factory: factory.terminate(), list(factories))
    _all(lambda factory: factory.start(), factories)
    return factories
