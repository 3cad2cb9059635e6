"""Reading a RADOS object's omap whole, in pages.

One omap read returns at most ``osd_max_omap_entries_per_request`` keys
(1,024 by default), silently: asking for "all" (-1) of a larger omap gets
the first 1,024 and no error.  So every whole-omap read here goes page by
page, each starting after the last key of the one before, the way Ceph's
own mgr modules (``rbd_support``) read theirs.  A page shorter than asked
for is the last one: pages are far below the OSD's cap, so the cap never
cuts one short.
"""

from __future__ import annotations

from typing import Any
from typing import Iterator

from cinder_rbd_bootcache.ceph import api as ceph

#: Keys per read, as the mgr's rbd_support reads its omaps.
PAGE = 128


def items(ioctx: Any, obj: str, prefix: str = '',
          page: int = PAGE) -> Iterator[tuple[str, bytes]]:
    """Every (key, value) of ``obj``'s omap whose key starts with
    ``prefix``, in key order; nothing when the object does not exist.
    ``ioctx`` may be wrapped for eventlet (``tpool_wrap``)."""
    after = ''
    while True:
        with ceph.rados.ReadOpCtx() as op:
            found, _ret = ioctx.get_omap_vals(op, after, prefix, page)
            try:
                ioctx.operate_read_op(op, obj)
            except ceph.rados.ObjectNotFound:
                return
            batch = [(key, value) for key, value in found]
        yield from batch
        if len(batch) < page:
            return
        after = batch[-1][0]
