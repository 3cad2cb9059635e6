"""Describing one entry from its RBD image: ``EntryInfo``.

What the catalog lists, what the removal protocol decides by (clones,
clone format, the RBD id that tells a replaced entry apart), and what
the index records of a ready entry (:func:`ready_record`).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Optional

from cinder_rbd_bootcache.bootcache import index as entry_index
from cinder_rbd_bootcache.bootcache import naming
from cinder_rbd_bootcache.ceph import api as ceph


@dataclasses.dataclass
class EntryInfo:
    """One entry as the driver, the eviction policy and the CLI see it."""
    image_id: str
    name: str
    state: str
    size: int = 0
    metadata: dict = dataclasses.field(default_factory=dict)
    children: int = 0
    clone_format_2: bool = False
    hits: int = 0
    last_used: float = 0.0
    trash_id: Optional[str] = None
    #: The RBD image's own id (its id in the trash once moved there).
    rbd_id: str = ''

    @property
    def bytes_used(self) -> int:
        return int(self.metadata.get('bytes_used') or self.size)

    @property
    def created(self) -> float:
        return float(self.metadata.get('created') or 0)


def describe(ioctx: Any, name: str, image_id: str, state: str,
             trash_id: Optional[str] = None) -> Optional[EntryInfo]:
    """The entry ``name`` (or the trash's ``trash_id``) as its RBD image
    says; None if the image is gone."""
    with ceph.open_image(ioctx, None if trash_id else name,
                         image_id=trash_id, missing_ok=True) as image:
        if image is None:
            return None  # removed while we listed
        info = EntryInfo(image_id, name, state, size=image.size(),
                         trash_id=trash_id, rbd_id=image.id())
        info.metadata = {k[len(naming.META):]: v
                         for k, v in image.metadata_list()
                         if k.startswith(naming.META)}
        if any(s['name'] == naming.SNAPSHOT for s in image.list_snaps()):
            image.set_snap(naming.SNAPSHOT)
            info.children = len(list(image.list_children()))
            image.set_snap(None)
        info.clone_format_2 = bool(
            image.op_features() &
            ceph.rbd.RBD_OPERATION_FEATURE_CLONE_PARENT)
    return info


def ready_record(info: EntryInfo) -> entry_index.ReadyRecord:
    """The index's record of a ready entry described from its image."""
    def number(key: str) -> Optional[int]:
        value = info.metadata.get(key)
        return int(value) if value else None
    return entry_index.ReadyRecord(
        info.image_id, bytes_used=info.bytes_used, created=info.created,
        size=number('size'), virtual_size=number('virtual_size'),
        disk_format=info.metadata.get('disk_format', ''),
        populate_seconds=float(info.metadata.get('populate_seconds') or 0))
