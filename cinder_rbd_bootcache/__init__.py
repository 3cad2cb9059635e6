"""cinder-rbd-bootcache: a Cinder RBD driver that makes boot volumes fast.

The package is laid out one idea per module:

* ``driver``     -- the thin ``BootCacheRBDDriver`` Cinder loads.
* ``options``    -- every ``bootcache_*`` option, declared once.
* ``locations``  -- which Glance ``rbd://`` locations may be cloned, and why not.
* ``image_volumes`` -- which ``cinder://`` image-volume may be cloned.
* ``clone_policy`` -- which way a volume is made from an image.
* ``import_pipeline``, ``rbd_writer``, ``image_format``, ``ceph_pool``,
  ``progress``, ``errors`` -- an image into an RBD image, verified.
* ``cache``, ``catalog``, ``counters``, ``eviction``, ``lock``,
  ``integrity`` -- the boot cache.
* ``cli``        -- the ``cinder-rbd-bootcache`` operator command.

The Ceph sandbox, the in-process Cinder harness, the end-to-end services,
the demo and the bench are not part of this package: they live in
``bootcache_testkit`` beside it in the source tree, which is never
installed.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version('cinder-rbd-bootcache')
except _metadata.PackageNotFoundError:  # run from a source tree
    __version__ = '0.0.0'
