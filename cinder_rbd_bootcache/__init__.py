"""cinder-rbd-bootcache: a Cinder RBD driver that makes boot volumes fast.

The package is laid out one concept per folder; imports point down this
list, never back up:

* ``driver`` -- the thin ``BootCacheRBDDriver`` Cinder loads; ``options``
  (every ``bootcache_*`` option, declared once), ``errors`` (what a create
  can end in, and what the user is told), ``clone_policy`` (which way a
  volume is made from an image or a volume), ``create_from_image`` (the
  four ways ``clone_image`` tries, in order).
* ``cli/`` -- the ``cinder-rbd-bootcache`` operator command.
* ``encryption/`` -- LUKS volumes written from boot-cache entries.
* ``bootcache/`` -- the boot cache: entries, their index, counters, locks,
  eviction and integrity checks, all kept in Ceph; the clone of an entry
  into a volume, its volume stats, and why an entry is not a volume to
  manage.
* ``image_import/`` -- an image into RBD images, verified, with no
  partial result.
* ``glance/`` -- what Glance says of an image: its facts, its locations
  (and the rules for cloning its rbd-store snapshot), its image-volumes,
  its format, its download.
* ``ceph/`` -- the one seam to librados/librbd and the monitors, the
  shared clients, pool state, omap, and the checks of a backend's Ceph
  settings.
* ``upstream/`` -- every place the driver reaches into Cinder's internals
  (the create flow, the ``[glance]`` service user, RBDDriver's private
  connection, set-up and clone-chain methods) or meets a difference
  between Cinder releases; each module names the upstream change that
  would retire it.

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
