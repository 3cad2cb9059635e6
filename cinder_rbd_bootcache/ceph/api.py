"""The one place this package reaches librados and librbd.

The ``rados``/``rbd`` Python bindings come with Ceph (Debian's
``python3-rados``/``python3-rbd``), not from PyPI, so they are imported
here once, guarded as upstream's RBD driver guards them: a host without
them can still import the package (``--help``, the option list, unit
tests), and fails only when it talks to Ceph.  Cinder itself is imported
only by the calls that need it: importing cinder patches eventlet into
the process (unless told not to), and the test kit's Ceph sandbox uses
the monitor commands here in processes that must not be patched.

Calls that wait on Ceph (opening an image reads its header from the
OSDs; list, create, remove, trash...) run through ``cinder.utils
.tpool_wrap``: under eventlet in eventlet's native thread pool, so the hub
keeps serving the other requests of this cinder-volume; under native
threads directly.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import functools
import json
from typing import Any
from typing import Callable
from typing import ContextManager
from typing import Iterator
from typing import Optional

import tenacity

from cinder_rbd_bootcache.upstream import compat

try:
    import rados
    import rbd
except ImportError:  # no Ceph bindings on this host
    rados = None
    rbd = None


class MonCommandError(Exception):
    """A monitor command was refused or failed."""

    def __init__(self, prefix: str, ret: int, err: str) -> None:
        super().__init__('ceph %s failed (%d): %s' % (prefix, ret, err))
        self.prefix = prefix
        self.ret = ret
        self.err = err


def mon_command_text(client: Any, prefix: str, **args: Any) -> str:
    """The monitor's answer to ``ceph PREFIX`` with ``args``, as text.

    ``client`` is a connected ``rados.Rados``.  Raises MonCommandError.
    """
    ret, out, err = client.mon_command(json.dumps(dict(prefix=prefix,
                                                       **args)), b'')
    if ret != 0:
        raise MonCommandError(prefix, ret, err)
    return out.decode()


def mon_command(client: Any, prefix: str, **args: Any) -> Any:
    """The monitor's answer to ``ceph PREFIX`` with ``args``, asked and
    decoded as JSON.  Raises MonCommandError."""
    return json.loads(mon_command_text(client, prefix, format='json',
                                       **args))


@contextlib.contextmanager
def open_image(ioctx: Any, name: Optional[str],
               image_id: Optional[str] = None,
               snapshot: Optional[str] = None, read_only: bool = False,
               missing_ok: bool = False,
               binding: Any = None) -> Iterator[Any]:
    """``rbd.Image`` opened, used and closed off the eventlet hub if any.

    ``image_id`` opens an image in the trash (``name`` None).  With
    ``missing_ok`` an image that does not exist yields None instead of
    raising ``rbd.ImageNotFound``.  ``binding`` is the ``rbd`` module to
    use, the driver's own (``driver.rbd``) where upstream's unit tests
    replace it; this module's by default.
    """
    binding = binding or rbd
    try:
        image = compat.tpool_wrap(compat.tpool_wrap(binding.Image)(
            ioctx, name, snapshot=snapshot, read_only=read_only,
            image_id=image_id))
    except binding.ImageNotFound:
        if not missing_ok:
            raise
        yield None
        return
    try:
        yield image
    finally:
        image.close()


def rbd_api() -> Any:
    """``rbd.RBD()`` whose calls (list, create, clone, trash...) run off
    the eventlet hub if any."""
    return compat.tpool_wrap(rbd.RBD())


#: Seconds ``remove_image_waiting_out_others`` and ``trash_remove`` wait
#: for another client's removal of the same image before they raise its
#: ESTALE; also the age under which the trash sweep leaves a removal to
#: its remover.
CONCURRENT_REMOVAL_WAIT = 60


def _removed_by_another(exc: BaseException) -> bool:
    # librbd removes an image by moving it to the trash, then removing the
    # trash entry; the trash entry's state change answers ESTALE when
    # another client's move or removal of the same image is under way.
    return isinstance(exc, rbd.OSError) and exc.errno == errno.ESTALE


def _removed(remove: Callable[[], None]) -> bool:
    """Run ``remove``; False if librbd finds nothing to remove.  ESTALE
    (another client's removal of the same image under way) is waited out:
    that removal ends, and ``remove`` then finds nothing."""
    waiting = tenacity.retry(
        retry=tenacity.retry_if_exception(_removed_by_another),
        wait=tenacity.wait_exponential(multiplier=0.05, max=1),
        stop=tenacity.stop_after_delay(CONCURRENT_REMOVAL_WAIT),
        reraise=True)(remove)
    try:
        waiting()
    except rbd.ImageNotFound:
        return False
    return True


def remove_image_waiting_out_others(ioctx: Any, name: str) -> bool:
    """Remove image ``name``; False if it does not exist (any more).
    For an image other clients may remove too (a boot-cache entry); unlike
    ``pool.discard_and_remove_image`` it keeps the data until librbd
    removes the image and does not retry on a full pool.

    When another client (a second evictor, a population replacing the
    entry) is removing the same image, librbd fails with ESTALE; this
    waits for that removal and returns False once the name is gone, so
    the name is free whichever client removed it.  Raises what librbd
    raises otherwise (ImageBusy, ImageHasSnapshots, ...).
    """
    return _removed(lambda: rbd_api().remove(ioctx, name))


def trash_remove(ioctx: Any, trash_id: str) -> bool:
    """Remove item ``trash_id`` from the RBD trash (``force``: librbd's
    own removals leave items whose deferment has not ended); False if it
    is gone, also when another client removed it meanwhile."""
    return _removed(lambda: rbd_api().trash_remove(ioctx, trash_id,
                                                   force=True))


def removal_under_way(item: dict, now: datetime.datetime) -> bool:
    """Whether RBD trash item ``item`` (from ``trash_list``) is an image
    another client's ``rbd remove`` is removing now: librbd moves it to
    the trash (source REMOVING), then removes it.  One older than
    :data:`CONCURRENT_REMOVAL_WAIT` is what a failed removal left."""
    return (item.get('source') == 'REMOVING' and
            now - item['deletion_time'] <
            datetime.timedelta(seconds=CONCURRENT_REMOVAL_WAIT))


@contextlib.contextmanager
def connect(driver: Any, pool: str, timeout: int) -> Iterator[tuple]:
    """(client, ioctx) of ``pool`` through the driver's own connection
    code (``rbd_user``, ``rbd_ceph_conf``, ``rados_connect_timeout``),
    every librados operation timing out after ``timeout`` seconds
    (``rados_osd_op_timeout``).

    The ioctx carries librados' "full try" flag: a full pool answers a
    write with ENOSPC at once instead of holding it until space comes
    back (see ``ceph_pool``).
    """
    client, ioctx = driver._connect_to_rados(pool, timeout=timeout)
    try:
        ioctx.set_osdmap_full_try()
        yield client, ioctx
    finally:
        driver._disconnect_from_rados(client, ioctx)


def connector(driver: Any,
              timeout: int) -> Callable[[str], ContextManager[tuple]]:
    """``connect(pool)`` for the import pipeline, the boot cache and the
    CLI: :func:`connect` with the driver and the timeout bound."""
    return functools.partial(connect, driver, timeout=timeout)
