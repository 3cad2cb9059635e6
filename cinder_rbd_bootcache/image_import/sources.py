"""What qemu-img converts from: a local file or an RBD image, checked.

A ``Source`` is qemu-img's name for the image (a local path, or an
``rbd:POOL/IMAGE[@SNAPSHOT]:conf=...:id=...`` spec read with the
backend's Ceph user) and the format checks of ``glance.formats`` on the
same bytes: for an RBD image its header is read through ``RBDReader``, a
small read-only file object over the open image, so the checks are the
ones a downloaded file gets.  The checks run once per source: a source is
immutable while it is converted (a snapshot, or a staging image that is
written completely before its first conversion), so converting it into
the ``later`` targets of an import (``Report.fill_later``) checks it
again for nothing.
"""

from __future__ import annotations

import io
import threading
from typing import Any
from typing import Callable
from typing import Optional

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance import formats as image_format
from cinder_rbd_bootcache.image_import.settings import Settings
from cinder_rbd_bootcache.image_import import targets as targets_mod

#: Bytes read from RBD at a time while the header is inspected: the
#: inspectors ask for 4 KiB at a time, and a round trip to an OSD per
#: 4 KiB would make the check the slow part.
READ_AHEAD = 1024 * 1024


#: An RBD source that cannot be opened or read: its checks could not run,
#: and nothing was written.
Unreadable = errors.ImageSourceUnreadable


class RBDReader(io.RawIOBase):
    """A read-only, sequential file object over an open ``rbd.Image``
    (``ceph.open_image``: each read runs off the eventlet hub), reading
    ``READ_AHEAD`` bytes at a time."""

    def __init__(self, image: Any, size: int) -> None:
        super().__init__()
        self._image = image
        self._size = size
        self._position = 0
        self._buffer = b''
        self._buffer_start = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._position
        size = min(size, self._size - self._position)
        if size <= 0:
            return b''
        offset = self._position - self._buffer_start
        if not 0 <= offset < len(self._buffer) or \
                offset + size > len(self._buffer):
            length = min(max(size, READ_AHEAD), self._size - self._position)
            self._buffer = self._image.read(self._position, length)
            self._buffer_start = self._position
            offset = 0
        data = self._buffer[offset:offset + size]
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._position


class Source:
    """What a conversion reads (``spec``, qemu-img's name for it) and its
    format checks (``inspect``, which returns its virtual size)."""

    def __init__(self, spec: str, check: Callable[[], int],
                 description: str) -> None:
        self.spec = spec
        self.description = description
        self._check = check
        self._lock = threading.Lock()
        self._virtual_size: Optional[int] = None

    def inspect(self, then: Optional[Callable[[str], None]] = None) -> int:
        """Run the format checks, and ``then(spec)`` after them (the first
        time only); the virtual size.  Raises ImageFormatMismatch,
        ImageUnsafe, and what ``then`` raises."""
        with self._lock:
            if self._virtual_size is None:
                virtual_size = self._check()
                if then is not None:
                    then(self.spec)
                self._virtual_size = virtual_size
            return self._virtual_size

    def __str__(self) -> str:
        return self.description


def local_file(path: str, disk_format: str, image_id: str) -> Source:
    """A checked image file on local disk."""
    return Source(path, lambda: image_format.check_file(path, disk_format,
                                                        image_id),
                  path)


def rbd_image(connect: targets_mod.Connect, settings: Settings, pool: str,
              name: str, disk_format: str, image_id: str,
              snapshot: Optional[str] = None,
              binding: Any = None) -> Source:
    """An RBD image (or its snapshot) of this cluster, opened read-only
    for its checks, read by qemu-img with the backend's Ceph user."""
    description = '%s/%s%s' % (pool, name,
                               '@' + snapshot if snapshot else '')

    def check() -> int:
        try:
            with connect(pool) as (_client, ioctx), \
                    ceph.open_image(ioctx, name, snapshot=snapshot,
                                    read_only=True,
                                    binding=binding) as image:
                size = image.size()
                head = RBDReader(image, size)
                # The checks read only the header, read-only: errors of
                # that read are this source's, the checks' verdicts are
                # Cinder errors of their own.
                return image_format.check_stream(head, size, disk_format,
                                                 image_id)
        except (binding or ceph.rbd).Error as exc:
            raise Unreadable(image_id=image_id, source=description,
                             reason=str(exc) or type(exc).__name__)
    spec = rbd_spec(pool, name, settings.rbd_user, settings.ceph_conf,
                    settings.stall_timeout, snapshot=snapshot)
    return Source(spec, check, description)


def rbd_spec(pool: str, name: str, user: str, conf: str, op_timeout: int,
             snapshot: Optional[str] = None) -> str:
    """qemu-img's ``rbd:`` filename; ``:`` in values must be escaped.
    ``/`` and ``@`` keep their meaning (a namespace, a snapshot), so
    names that hold them are refused before they get here
    (``rbd_store.CloneRules.import_source``)."""
    def esc(value: str) -> str:
        return value.replace('\\', '\\\\').replace(':', '\\:')
    spec = 'rbd:%s/%s' % (esc(pool), esc(name))
    if snapshot:
        spec += '@' + esc(snapshot)
    spec += ':conf=%s' % esc(conf)
    if user:
        spec += ':id=%s' % esc(user)
    return spec + ':rados_osd_op_timeout=%d' % op_timeout
