"""Which way a volume is made from an image, decided in pure functions.

The driver asks; this module answers from plain facts (image metadata,
locations, configuration), so every rule is table-tested without Ceph.

``clone_image`` tries the image's locations first, then the boot cache
or its own import.  It leaves an image to Cinder's flow only when the flow
must: an image whose Glance signature must be verified (only the flow's
download path checks signatures), a format we do not import, and the
image-volume cache when an operator uses it instead of the boot cache.
"""

from __future__ import annotations

from typing import Optional

from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.glance import formats as image_format

#: Image properties that carry a Glance image signature.
SIGNATURE_PROPERTIES = ('img_signature', 'img_signature_hash_method',
                        'img_signature_key_type',
                        'img_signature_certificate_uuid')


def why_not_import(facts: ImageFacts, image_cache_in_use: bool,
                   boot_cache_enabled: bool,
                   verify_signatures: str) -> Optional[str]:
    """Why ``clone_image`` should leave this image to Cinder's flow, or None.

    Asked after the image's rbd:// and cinder:// locations were tried.
    ``verify_signatures`` is Cinder's ``verify_glance_signatures``.
    """
    if not image_format.supported(facts):
        return ('disk_format %s / container_format %s is not imported by '
                'this driver' % (facts.disk_format,
                                 facts.container_format))
    signed = any(key in facts.properties for key in SIGNATURE_PROPERTIES)
    if signed and verify_signatures != 'disabled':
        return 'its Glance signature must be verified by Cinder\'s flow'
    if image_cache_in_use and not boot_cache_enabled:
        return ('the image-volume cache of this backend is in use and '
                'bootcache_enabled is off')
    return None


#: How ``create_cloned_volume`` makes a volume from another, by
#: ``rbd_max_clone_depth`` and the source's depth (see ``clone_method``).
FULL_COPY = 'full copy'
CLONE = 'snapshot + clone'
FLATTEN_SOURCE_THEN_CLONE = 'flatten the source, then snapshot + clone'
CLONE_THEN_FLATTEN = 'snapshot + clone, then flatten the new volume'


def clone_method(max_clone_depth: int, source_depth: int,
                 temporary: bool = False,
                 source_has_snapshots: bool = False) -> str:
    """The row of the table for a source ``source_depth`` clones deep.

    Upstream flattens the *new* volume when the source is at the limit, so
    every later clone of that source is flattened again; flattening the
    source once leaves it at depth 0 and every later clone of it (an
    image-volume cache entry, typically) a cheap depth-1 clone.  Two
    sources keep upstream's rows:

    * ``temporary``: the new volume is one Cinder makes for itself
      (``use_quota`` False: backup of an in-use volume, image upload).
      Upstream never flattens for those: the backup path makes the clone
      inside a synchronous RPC call that a flatten would time out (Cinder
      bug 1916843).  So neither is the source flattened.
    * ``source_has_snapshots``: a flattened image's snapshots keep their
      link to the parent, so the source's own clone snapshot on its parent
      could not be released; upstream's row (flatten the new volume) makes
      no such dependency.
    """
    if max_clone_depth <= 0:
        return FULL_COPY
    if source_depth < max_clone_depth or temporary:
        return CLONE
    if source_has_snapshots:
        return CLONE_THEN_FLATTEN
    return FLATTEN_SOURCE_THEN_CLONE
