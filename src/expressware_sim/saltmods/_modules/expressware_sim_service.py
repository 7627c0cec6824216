"""
Salt ``service`` provider for the applications of a simulated eXpressWare node.

On a simulated node, "applications that use the stack" (``ndbmtd``, ``mysqld``, ...)
are entries of the node's state; a running one holds SuperSockets, so
``dis_services stop`` fails until it is stopped, as on a real Cluster Node. This
module lets Salt's ``service.start``/``service.stop``/``service.status`` drive them,
so the ``applications`` argument of the ``expressware.installed`` state can be
exercised without real services. Enable it in the minion configuration
(``expressware_sim.service_provider_config()`` returns this)::

    module_dirs: [<expressware_sim package>/saltmods]
    providers:
      service: expressware_sim_service
"""

import os

__virtualname__ = "expressware_sim_service"


def __virtual__():
    try:
        import expressware_sim  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return False, "expressware_sim_service needs the expressware_sim package"
    return __virtualname__


def _node():
    from expressware_sim import Node  # pylint: disable=import-outside-toplevel

    prefix = __salt__["config.get"]("expressware:prefix")
    return Node(os.path.dirname(os.path.dirname(prefix)))  # <root>/opt/DIS -> <root>


def start(name, **kwargs):  # pylint: disable=unused-argument
    """
    Start the simulated application ``name``.

    CLI Example:

    .. code-block:: bash

        salt node1 service.start ndbmtd
    """
    return _node().set_application(name, True)


def stop(name, **kwargs):  # pylint: disable=unused-argument
    """
    Stop the simulated application ``name``.

    CLI Example:

    .. code-block:: bash

        salt node1 service.stop ndbmtd
    """
    return _node().set_application(name, False)


def status(name, sig=None, **kwargs):  # pylint: disable=unused-argument
    """
    True when the simulated application ``name`` runs.

    CLI Example:

    .. code-block:: bash

        salt node1 service.status ndbmtd
    """
    return bool(_node().application_running(name))


def available(name):
    """
    True when the node has a simulated application ``name``.

    CLI Example:

    .. code-block:: bash

        salt node1 service.available ndbmtd
    """
    return _node().application_running(name) is not None
