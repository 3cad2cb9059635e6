"""The facts of a Glance image the driver acts on, read once.

Cinder hands drivers ``image_meta``, the dict of ``GlanceImageService.show``;
``ImageFacts.from_glance`` reads it once, so that the rest of the package
sees typed fields and one rule for what the image's bytes must hash to.
A boot-cache entry records the same facts as RBD image metadata (strings);
``from_entry_metadata`` reads them back, for ``cinder-rbd-bootcache
verify`` and for telling a stale entry from a current one.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any
from typing import Mapping
from typing import Optional


@dataclasses.dataclass(frozen=True)
class ImageFacts:
    id: str
    disk_format: Optional[str] = None
    container_format: Optional[str] = None
    #: Bytes Glance stores (the download), not the virtual size.
    size: Optional[int] = None
    virtual_size: Optional[int] = None
    owner: Optional[str] = None
    #: Glance's multihash (``os_hash_algo``/``os_hash_value``).
    hash_algo: Optional[str] = None
    hash_value: Optional[str] = None
    #: Legacy md5 ``checksum``.
    md5: Optional[str] = None
    properties: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))

    @classmethod
    def from_glance(cls, image_meta: Mapping[str, Any]) -> 'ImageFacts':
        """From Cinder's ``image_meta`` (what ``image_service.show``
        returns); accepts an ``ImageFacts`` as is."""
        if isinstance(image_meta, ImageFacts):
            return image_meta
        return cls(
            id=image_meta['id'],
            disk_format=image_meta.get('disk_format'),
            container_format=image_meta.get('container_format'),
            size=image_meta.get('size'),
            virtual_size=image_meta.get('virtual_size'),
            owner=image_meta.get('owner'),
            hash_algo=image_meta.get('os_hash_algo') or None,
            hash_value=image_meta.get('os_hash_value') or None,
            md5=image_meta.get('checksum') or None,
            properties=types.MappingProxyType(
                dict(image_meta.get('properties') or {})))

    @classmethod
    def from_entry_metadata(cls, metadata: Mapping[str, str]) -> 'ImageFacts':
        """From what ``entry_metadata`` recorded on a boot-cache entry."""
        def number(key: str) -> Optional[int]:
            return int(metadata[key]) if metadata.get(key) else None
        return cls(
            id=metadata.get('image_id', ''),
            disk_format=metadata.get('disk_format') or None,
            size=number('size'),
            virtual_size=number('virtual_size'),
            hash_algo=metadata.get('os_hash_algo') or None,
            hash_value=metadata.get('os_hash_value') or None,
            md5=metadata.get('checksum') or None)

    def entry_metadata(self) -> dict[str, str]:
        """The facts a boot-cache entry records (RBD metadata is text)."""
        return {
            'image_id': self.id,
            'fingerprint': self.fingerprint,
            'os_hash_algo': self.hash_algo or '',
            'os_hash_value': self.hash_value or '',
            'checksum': self.md5 or '',
            'size': str(self.size or ''),
            'virtual_size': str(self.virtual_size or ''),
            'disk_format': self.disk_format or '',
        }

    @property
    def expected_hash(self) -> Optional[tuple[str, str]]:
        """(algorithm, hex digest) the image's bytes must match: Glance's
        multihash when it has one, else the md5 ``checksum`` (images
        uploaded before Glance recorded multihashes); None when Glance
        records neither, and the data cannot be verified."""
        if self.hash_algo and self.hash_value:
            return self.hash_algo, self.hash_value
        if self.md5:
            return 'md5', self.md5
        return None

    @property
    def fingerprint(self) -> str:
        """What identifies these bytes: an entry whose recorded fingerprint
        differs was made from another upload of the image."""
        expected = self.expected_hash
        return expected[1] if expected else ''

    @property
    def is_raw(self) -> bool:
        return self.disk_format == 'raw'
