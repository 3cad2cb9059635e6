"""Every option of the driver, declared once.

All names start with ``bootcache_`` so they never collide with upstream's
``rbd_*`` options in the same backend section.  ``list_opts`` feeds
``oslo-config-generator`` (entry point ``oslo.config.opts``), which writes
``etc/cinder-rbd-bootcache.conf.sample``; never edit the sample by hand.
"""

from __future__ import annotations

from oslo_config import cfg

BOOTCACHE_OPTS = [
    cfg.ListOpt(
        'bootcache_allowed_clone_pools',
        default=[],
        help='Ceph pools that copy-on-write clones of Glance images may come '
             'from (the pools of the Glance rbd store, usually "images"). '
             'An rbd:// image location that names any other pool is not '
             'cloned; the image is copied instead. Empty means any pool of '
             'this cluster except the pools this backend stores volumes in: '
             'a location that points at a volume pool could name another '
             'project\'s volume snapshot, and cloning it would leak that '
             'data.'),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options for oslo-config-generator, in the backend section."""
    return [('backend_defaults', BOOTCACHE_OPTS)]
