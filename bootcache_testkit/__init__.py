"""The test kit of cinder-rbd-bootcache: never installed, never shipped.

What the tests, the demo and the benchmarks run the driver in; tox puts
this directory's parent on ``PYTHONPATH`` (see tox.ini), and the wheel of
``cinder-rbd-bootcache`` holds none of it (``tests/unit/test_wheel.py``):

* ``sandbox``    -- a throwaway single-node Ceph on 127.0.0.1.
* ``harness``    -- Cinder's real create_volume flow, in-process, plus a
  local image service; shared by tests, demo and bench.
* ``e2e``        -- real Keystone, Glance, RabbitMQ, MariaDB, Cinder,
  Placement and Nova services around the sandbox, for ``tox -e e2e``,
  ``tox -e bench-e2e`` and ``tox -e tempest``.
* ``demo``/``bench`` -- the main job and the upstream-vs-ours benchmark.
"""
