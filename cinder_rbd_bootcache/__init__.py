"""cinder-rbd-bootcache: a Cinder RBD driver that makes boot volumes fast.

The package is laid out one idea per module:

* ``driver``     -- the thin ``BootCacheRBDDriver`` Cinder loads.
* ``options``    -- every ``bootcache_*`` option, declared once.
* ``locations``  -- which Glance ``rbd://`` locations may be cloned, and why not.
* ``sandbox``    -- a throwaway single-node Ceph for tests, demo and bench.
* ``harness``    -- Cinder's real create_volume flow, in-process, plus a
  local image service; shared by tests, demo and bench.
* ``demo``/``bench`` -- the main job and the upstream-vs-ours benchmark.
"""
