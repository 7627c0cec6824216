"""Salt extension for Dolphin eXpressWare.

The loader modules are kept in the classic ``_modules``/``_states``/``_runners``/
``_beacons`` directories of the source tree and installed as the sub-packages
``modules``, ``states``, ``runners`` and ``beacons`` of this package.
"""
