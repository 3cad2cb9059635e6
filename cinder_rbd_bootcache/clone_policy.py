"""Which way a volume is made from an image, decided in pure functions.

The driver asks; this module answers from plain facts (image metadata,
locations, configuration), so every rule is table-tested without Ceph.

Today (issue 3) ``clone_image`` imports an image itself only when none of
Cinder's own faster or stricter paths applies: a cinder:// image-volume
clone and the image-volume cache stay with Cinder's flow, and so does an
image Cinder must verify a Glance signature of, since only the flow's
download path checks signatures.  The boot cache (issue 4) takes over the
first two here.
"""

from __future__ import annotations

from typing import Iterable, Optional

from cinder_rbd_bootcache import image_format

#: Image properties that carry a Glance image signature.
SIGNATURE_PROPERTIES = ('img_signature', 'img_signature_hash_method',
                        'img_signature_key_type',
                        'img_signature_certificate_uuid')


def why_not_import(image_meta: dict, location_urls: Iterable[str],
                   cinder_scheme_allowed: bool, image_cache_in_use: bool,
                   verify_signatures: str) -> Optional[str]:
    """Why ``clone_image`` should leave this image to Cinder's flow, or None.

    ``verify_signatures`` is Cinder's ``verify_glance_signatures``.
    """
    if not image_format.supported(image_meta):
        return ('disk_format %s / container_format %s is not imported by '
                'this driver' % (image_meta.get('disk_format'),
                                 image_meta.get('container_format')))
    properties = image_meta.get('properties') or {}
    signed = any(key in properties for key in SIGNATURE_PROPERTIES)
    if signed and verify_signatures != 'disabled':
        return 'its Glance signature must be verified by Cinder\'s flow'
    if cinder_scheme_allowed and any(
            (url or '').startswith('cinder://') for url in location_urls):
        return 'it has a cinder:// location Cinder\'s flow can clone'
    if image_cache_in_use:
        return 'the image-volume cache of this backend is in use'
    return None


#: How ``create_cloned_volume`` makes a volume from another (the seed's
#: table for ``rbd_max_clone_depth``).
FULL_COPY = 'full copy'
CLONE = 'snapshot + clone'
FLATTEN_SOURCE_THEN_CLONE = 'flatten the source, then snapshot + clone'


def clone_method(max_clone_depth: int, source_depth: int) -> str:
    """The row of the table for a source ``source_depth`` clones deep.

    Upstream flattens the *new* volume when the source is at the limit, so
    every later clone of that source is flattened again; flattening the
    source once leaves it at depth 0 and every later clone of it (an
    image-volume cache entry, typically) a cheap depth-1 clone.
    """
    if max_clone_depth <= 0:
        return FULL_COPY
    if source_depth >= max_clone_depth:
        return FLATTEN_SOURCE_THEN_CLONE
    return CLONE
