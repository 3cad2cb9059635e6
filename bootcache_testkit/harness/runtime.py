"""Pick Cinder's concurrency mode for this process, before Cinder loads.

cinder-volume 29 runs under eventlet (the default) or native threads
(``OS_CINDER_DISABLE_EVENTLET_PATCHING=1``).  The harness follows the same
switch through :func:`patch`, so the tests can run the driver in both modes.
"""

from __future__ import annotations

import os

_patched: str | None = None
ENV = 'BOOTCACHE_CONCURRENCY'
MODES = ('threading', 'eventlet')


def mode_from_env(default: str = 'threading') -> str:
    mode = os.environ.get(ENV, default)
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
    os.environ['OS_CINDER_DISABLE_EVENTLET_PATCHING'] = (
        '1' if mode == 'threading' else '0')
    from cinder import monkey_patch
    monkey_patch.patch(backend=mode)
    _patched = mode
    return mode
