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
    cfg.IntOpt(
        'bootcache_import_writes_in_flight',
        default=8, min=1, max=64,
        help='How many asynchronous librbd writes one image import keeps in '
             'flight. Each is at most one RBD object (rbd_store_chunk_size), '
             'so an import holds at most this many objects of image data in '
             'memory, whatever the size of the image.'),
    cfg.IntOpt(
        'bootcache_import_stall_timeout',
        default=120, min=5,
        help='Seconds a single Ceph operation of an image import may take '
             'before the import is aborted (librados rados_osd_op_timeout on '
             'the connection the import uses). A full pool or OSD makes '
             'librbd writes wait for ever; with this limit the volume goes '
             'to error with a message naming the full pool, and the partial '
             'RBD image is removed.'),
    cfg.BoolOpt(
        'bootcache_enabled',
        default=False,
        help='Keep one verified "golden" RBD image per Glance image in this '
             'backend\'s pool and make every volume from that image a '
             'copy-on-write clone of it: one download per image for the '
             'whole cluster, no internal tenant and no Glance locations '
             'needed. Off by default until entry eviction exists: entries '
             'are kept until removed by hand.'),
    cfg.IntOpt(
        'bootcache_populate_wait',
        default=600, min=1,
        help='Seconds a create waits for another request (of any host) '
             'that is populating the boot-cache entry of the same image, '
             'before it fails.'),
    cfg.IntOpt(
        'bootcache_lock_lease',
        default=30, min=3,
        help='Seconds of the lease on a boot-cache population lock, kept '
             'in Ceph and renewed every third of it while the entry is '
             'built. A process that dies while populating blocks others '
             'for about this long.'),
    cfg.IntOpt(
        'bootcache_progress_interval',
        default=10, min=1,
        help='Seconds between two progress lines (bytes, percent, rate) in '
             'the log while an image is imported.'),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options for oslo-config-generator, in the backend section."""
    return [('backend_defaults', BOOTCACHE_OPTS)]
