"""Glance image locations: parsing them, and deciding if we clone.

Glance's rbd store publishes ``rbd://FSID/POOL/IMAGE/SNAPSHOT`` (each part
percent-encoded).  Cloning such a snapshot is the fastest way to a volume,
but a location is data supplied by whoever can set image locations, so
every rule that keeps a clone safe lives here, in one pure function that
the driver calls and the unit tests table-test.  Glance's cinder store
publishes ``cinder://VOLUME_ID`` (``cinder://STORE/VOLUME_ID`` with
multiple stores); ``cinder_volume_ids`` reads those.
"""

from __future__ import annotations

import dataclasses
from typing import Collection
from typing import Iterable
from typing import Optional
import urllib.parse

from oslo_utils import uuidutils

PREFIX = 'rbd://'
#: Formats qemu-img converts straight from a Glance rbd-store snapshot.
CONVERTED_FORMATS = ('qcow2', 'vdi', 'vhd', 'vhdx', 'vmdk')
CINDER_SCHEME = 'cinder'


@dataclasses.dataclass(frozen=True)
class RBDLocation:
    fsid: str
    pool: str
    image: str
    snapshot: str

    @property
    def url(self) -> str:
        parts = (self.fsid, self.pool, self.image, self.snapshot)
        return PREFIX + '/'.join(urllib.parse.quote(p, safe='')
                                 for p in parts)


class MalformedLocation(ValueError):
    """Not an ``rbd://FSID/POOL/IMAGE/SNAPSHOT`` URL."""


def parse(url: str) -> RBDLocation:
    """Parse a Glance rbd store location; raise MalformedLocation if not."""
    if not isinstance(url, str) or not url.startswith(PREFIX):
        raise MalformedLocation('not an rbd:// location')
    # Split before unquoting: an encoded '/' (%2F) belongs to its part.
    pieces = [urllib.parse.unquote(p) for p in url[len(PREFIX):].split('/')]
    if len(pieces) != 4:
        raise MalformedLocation('expected rbd://FSID/POOL/IMAGE/SNAPSHOT, '
                                'got %d parts' % len(pieces))
    if any(not p for p in pieces):
        raise MalformedLocation('a part of the location is empty')
    return RBDLocation(*pieces)


def urls_of(image_location: Optional[tuple]) -> list[str]:
    """Every distinct URL of Cinder's ``(direct_url, locations)`` pair.

    Upstream looks at the locations list only when it is not empty and
    ignores direct_url then; we look at both, direct_url first.
    """
    if not image_location:
        return []
    direct_url, locations = image_location
    urls = [direct_url] + [loc.get('url') for loc in locations or []]
    seen: list[str] = []
    for url in urls:
        if url and url not in seen:
            seen.append(url)
    return seen


def upstream_order(image_location: Optional[tuple]) -> list[str]:
    """The URLs upstream's ``RBDDriver.clone_image`` tries, in its order:
    the locations list when Glance gave one, else ``direct_url``."""
    if not image_location:
        return []
    direct_url, listed = image_location
    urls = ([loc.get('url') for loc in listed] if listed
            else [direct_url])
    return [url for url in urls if url]


def cinder_volume_ids(urls: Iterable[Optional[str]]) -> list[str]:
    """The volume ids named by ``cinder://`` locations, in order.

    Anything after the scheme that is not one volume id (or a store name
    and a volume id) is ignored: the id goes into a database query.
    """
    ids: list[str] = []
    for url in urls:
        if not isinstance(url, str):
            continue
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != CINDER_SCHEME or parts.query or parts.fragment:
            continue
        path = [p for p in (parts.netloc + parts.path).split('/') if p]
        if 1 <= len(path) <= 2 and uuidutils.is_uuid_like(path[-1]):
            volume_id = path[-1].lower()
            if volume_id not in ids:
                ids.append(volume_id)
    return ids


def why_not_cloneable(location: RBDLocation, *, our_fsid: str,
                      disk_format: Optional[str],
                      volume_pools: Iterable[str],
                      allowed_pools: Iterable[str],
                      formats: Collection[str] = ('raw',)) -> Optional[str]:
    """Why this location must not be cloned, or None when it may be.

    ``formats`` are the disk formats read from the store: raw for a
    clone; the formats the import pipeline converts
    (``CONVERTED_FORMATS``) when qemu-img reads the snapshot instead of a
    download.  Every other rule is the same for both.
    """
    if location.fsid != our_fsid:
        return 'it is in another Ceph cluster (fsid %s, ours %s)' % (
            location.fsid, our_fsid)
    if disk_format not in formats:
        if tuple(formats) == ('raw',):
            return ('the image is %s, and only raw images can be cloned'
                    % disk_format)
        return ('the image is %s, and only %s images are converted from '
                'the store' % (disk_format, ', '.join(sorted(formats))))
    allowed = [p for p in allowed_pools if p]
    if allowed:
        if location.pool not in allowed:
            return ('pool %s is not in bootcache_allowed_clone_pools (%s)'
                    % (location.pool, ', '.join(allowed)))
    elif location.pool in set(volume_pools):
        return ('pool %s holds this backend\'s volumes; cloning from it '
                'could expose another project\'s data' % location.pool)
    return None
