"""Pick Cinder's concurrency mode for this process, before Cinder loads.

cinder-volume 29 runs under eventlet (the default) or native threads
(``OS_CINDER_DISABLE_EVENTLET_PATCHING=1``); 26-28 only under eventlet
(``compat.concurrency_modes``).  The harness follows the same switch
through :func:`patch`, so the tests can run the driver in every mode the
installed release has.  Without ``BOOTCACHE_CONCURRENCY`` the harness
runs the release's first mode: native threads on 29, eventlet before.
"""

from __future__ import annotations

import os
from typing import Any

from cinder_rbd_bootcache.upstream import compat

_patched: str | None = None
ENV = 'BOOTCACHE_CONCURRENCY'
MODES = ('threading', 'eventlet')


def mode_from_env(default: str | None = None) -> str:
    mode = os.environ.get(ENV, default or compat.concurrency_modes()[0])
    if mode not in MODES:
        raise ValueError('%s must be one of %s, not %r' % (ENV, MODES, mode))
    return mode


def patch(mode: str | None = None) -> str:
    """Apply Cinder's own monkey patching for ``mode``; return the mode."""
    global _patched
    mode = mode or mode_from_env()
    if mode not in MODES:
        raise ValueError('unknown concurrency mode %r' % mode)
    if _patched:
        if _patched != mode:
            raise RuntimeError('process already runs Cinder in %s mode'
                               % _patched)
        return mode
    compat.patch_concurrency(mode)
    _patched = mode
    return mode


def add_harness_arguments(parser: Any) -> None:
    """The options of an in-process Cinder run that the benches share:
    read before Cinder loads (``--concurrency`` is this module's ``patch``
    mode), with the sandbox's size and where its files stay."""
    parser.add_argument('--memstore-gib', type=int, default=8,
                        help='RAM the sandbox OSD may use (default 8)')
    parser.add_argument('--workdir', default=None,
                        help='keep the sandbox\'s and Cinder\'s files '
                             '(cinder.log) here after the run')
    parser.add_argument('--debug', action='store_true',
                        help='debug logging in cinder.log')
    parser.add_argument('--concurrency', choices=MODES,
                        default='eventlet',
                        help='how cinder-volume runs: under eventlet, its '
                             'default (default), or native threads')
