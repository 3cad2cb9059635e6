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
* ``e2e``        -- real Glance, RabbitMQ, MariaDB and Cinder services
  around the sandbox, for ``tox -e e2e``.
* ``sandbox``    -- a throwaway single-node Ceph for tests, demo and bench.
* ``harness``    -- Cinder's real create_volume flow, in-process, plus a
  local image service; shared by tests, demo and bench.
* ``demo``/``bench`` -- the main job and the upstream-vs-ours benchmark.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version('cinder-rbd-bootcache')
except _metadata.PackageNotFoundError:  # run from a source tree
    __version__ = '0.0.0'
