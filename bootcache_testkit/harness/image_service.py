"""A local stand-in for Glance that Cinder's create_volume flow can use.

It answers the calls Cinder makes of ``GlanceImageService`` (``show``,
``get_location``, ``download``) from files in a directory, and stores each
image the way one of Glance's stores would:

* ``file``   -- no location is exposed; Cinder must download the image.
* ``rbd``    -- as Glance's rbd store does: an RBD image named after the image
  id in the ``images`` pool, snapshot ``snap``, protected; the location is
  ``rbd://FSID/images/ID/snap``.
* ``cinder`` -- as Glance's cinder store does: a ``cinder://VOLUME_ID``
  location naming an image-volume (the caller creates that volume).

Every download is counted per image: that count is how tests and the
bench tell which create-from-image path Cinder took.  Data is served as
python-glanceclient serves it to Cinder: ``_client.call(context, 'data',
image_id, do_checksum=...)`` stands in for Cinder's ``GlanceClientWrapper``
and glanceclient's ``images.data``, and ``download`` calls it as Cinder's
does (``do_checksum`` True: the client's own integrity iterator hashes
every chunk with the image's ``os_hash_algo``, else md5, in the consumer's
thread, and raises ``IOError(EPIPE)`` after the last chunk on a mismatch).
The driver asks ``_client`` without the check and hashes itself
(``cinder_rbd_bootcache.glance.download``), as with a real Glance.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import hashlib
import json
import os
import shutil
import threading
import time
from typing import Any
from typing import Iterator
from typing import Optional
import uuid

from cinder import exception
# image_utils first: cinder.image.glance and image_utils import each other,
# and only this order completes.
from cinder.image import image_utils  # noqa: F401
from cinder.image import glance  # noqa: H306,I100
from glanceclient.common import utils as glanceclient_utils
from glanceclient import exc as glance_exc
from oslo_concurrency import processutils
from oslo_utils import units

from bootcache_testkit.harness import disk_images

#: What ``download`` yields per chunk.  python-glanceclient before 4.4.0
#: iterated a download in 64 KiB chunks; 4.4.0 and later
#: (``glanceclient.common.http.CHUNKSIZE``: 4.8.0 to 4.12.0 in the
#: upper-constraints of Cinder 26 to 29) in 1 MiB ones.  64 KiB is the
#: harder case for a stream (64 times the per-chunk work), and the one
#: ``tox -e bench`` is specified with; ``tox -e bench-e2e`` goes through
#: the real client.
DOWNLOAD_CHUNK = 64 * units.Ki
#: Reading and hashing files of our own.
FILE_CHUNK = 4 * units.Mi
#: Bytes a second of a ``slow`` fault (see ``inject_fault``).
SLOW_RATE = 4 * units.Mi
GLANCE_RBD_SNAPSHOT = 'snap'


def qemu_img_info(path: str) -> dict[str, Any]:
    out, _err = processutils.execute('qemu-img', 'info', '--output=json',
                                     path)
    return json.loads(out)


class _ClientWrapper:
    """Cinder's ``GlanceClientWrapper.call`` for the methods asked of it
    here, glanceclient's ``images.get`` and ``images.data``."""

    def __init__(self, service: 'LocalImageService') -> None:
        self._service = service

    def call(self, context: Any, method: str, image_id: str,
             **kwargs: Any) -> Any:
        if method == 'get':
            # What glanceclient's images.get answers: the image's
            # fields, HTTPNotFound once it is deleted.
            kwargs.pop('privileged_user', None)
            try:
                return dict(self._service._images[image_id])
            except KeyError:
                raise glance_exc.HTTPNotFound(image_id) from None
        if method != 'data':
            raise NotImplementedError('the stand-in serves only '
                                      'images.get and images.data')
        return self._service._data(image_id, **kwargs)


class LocalImageService(glance.GlanceImageService):
    """Serves images from ``directory``; see the module docstring.  Only
    the calls above are answered; the rest of ``GlanceImageService`` would
    need a Glance and is not used by the flows under test."""

    def __init__(self, directory: str, owner: str,
                 rados_client_factory: Any = None,
                 images_pool: str = 'images') -> None:
        super().__init__()
        self.directory = directory
        self.owner = owner
        self.images_pool = images_pool
        # A callable returning a context manager that yields rados.Rados;
        # needed only for the rbd store.
        self._rados = rados_client_factory
        self._images: dict[str, dict[str, Any]] = {}
        self._locations: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.downloads: collections.Counter = collections.Counter()
        # image id -> (kind, after_bytes); see inject_fault.
        self._faults: dict[str, tuple[str, int]] = {}
        # Cinder's TemporaryImages keeps its registry on this attribute.
        self.temp_images = None
        # Where Cinder's GlanceImageService keeps its GlanceClientWrapper.
        self._client = _ClientWrapper(self)
        os.makedirs(directory, exist_ok=True)

    # -- the calls Cinder makes -----------------------------------------
    def show(self, context: Any, image_id: str) -> dict[str, Any]:
        try:
            meta = self._images[image_id]
        except KeyError:
            raise exception.ImageNotFound(image_id=image_id)
        return dict(meta, properties=dict(meta['properties']))

    def get_location(self, context: Any,
                     image_id: str) -> tuple[Optional[str], list]:
        self.show(context, image_id)
        # Glance >= 2024.2 through get_image_locations: no direct_url, a list.
        return None, [dict(loc) for loc in self._locations.get(image_id, [])]

    def download(self, context: Any, image_id: str, data: Any = None) -> Any:
        chunks = self._client.call(context, 'data', image_id)
        if data is None:
            return chunks
        for chunk in chunks:
            data.write(chunk)
        return None

    def _data(self, image_id: str, do_checksum: bool = True) -> Any:
        """glanceclient's ``images.data``: the image in DOWNLOAD_CHUNK chunks,
        hashed by the client unless ``do_checksum`` is False."""
        self.show(None, image_id)
        with self._lock:
            self.downloads[image_id] += 1
        chunks = self._served(self._path(image_id))
        if image_id in self._faults:
            chunks = self._faulty(chunks, *self._faults[image_id])
        if do_checksum:
            chunks = self._verified(chunks, self._images[image_id])
        return chunks

    # -- managing images ------------------------------------------------
    def add(self, source_path: str, disk_format: str,
            store: str = 'file', image_id: Optional[str] = None,
            owner: Optional[str] = None,
            container_format: str = 'bare',
            properties: Optional[dict] = None) -> dict[str, Any]:
        """Upload ``source_path`` as a new active image."""
        image_id = image_id or str(uuid.uuid4())
        path = self._path(image_id)
        shutil.copyfile(source_path, path)
        md5, sha512 = hashlib.md5(usedforsecurity=False), hashlib.sha512()
        for chunk in self._chunks(path):
            md5.update(chunk)
            sha512.update(chunk)
        info = qemu_img_info(path)
        now = datetime.datetime.now(datetime.timezone.utc)
        self._images[image_id] = {
            'id': image_id, 'name': os.path.basename(source_path),
            'status': 'active', 'visibility': 'public', 'protected': False,
            'owner': owner or self.owner,
            'size': os.path.getsize(path),
            'virtual_size': info['virtual-size'],
            'disk_format': disk_format, 'container_format': container_format,
            'checksum': md5.hexdigest(),
            'os_hash_algo': 'sha512', 'os_hash_value': sha512.hexdigest(),
            'min_disk': 0, 'min_ram': 0,
            'created_at': now, 'updated_at': now,
            'properties': dict(properties or {}),
        }
        self._locations[image_id] = []
        if store == 'rbd':
            self._store_in_rbd(image_id, path)
        elif store not in ('file', 'cinder'):
            raise ValueError('unknown store %r' % store)
        return self.show(None, image_id)

    def add_location(self, image_id: str, url: str,
                     metadata: Optional[dict] = None) -> None:
        self._locations[image_id].append({'url': url,
                                          'metadata': metadata or {}})

    def replace_locations(self, image_id: str, urls: list[str]) -> None:
        """What Glance's location API would now return for the image."""
        self._locations[image_id] = [{'url': url, 'metadata': {}}
                                     for url in urls]

    def set_meta(self, image_id: str, **fields: Any) -> None:
        """Change what ``show`` says (e.g. a wrong hash, for error tests)."""
        self._images[image_id].update(fields)

    def inject_fault(self, image_id: str, kind: str,
                     after_bytes: int) -> None:
        """Make downloads of the image fail after ``after_bytes``:
        ``truncate`` ends the stream early (a dropped connection that the
        client did not notice), ``error`` raises IOError mid-stream;
        ``slow`` serves the whole image, at 4 MiB a second after
        ``after_bytes`` (a slow Glance, so a test can act mid-import)."""
        if kind not in ('truncate', 'error', 'slow'):
            raise ValueError('unknown fault %r' % kind)
        self._faults[image_id] = (kind, after_bytes)

    def delete(self, image_id: str) -> None:
        """Remove the image and, for the rbd store, its RBD image."""
        if any(loc['url'].startswith('rbd://')
               for loc in self._locations.get(image_id, [])):
            self._remove_from_rbd(image_id)
        self._images.pop(image_id, None)
        self._locations.pop(image_id, None)
        self._faults.pop(image_id, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(image_id))

    def path(self, image_id: str) -> str:
        return self._path(image_id)

    # -- sharing with another process -----------------------------------
    def export(self, path: str) -> None:
        """Write what ``show`` and ``get_location`` say of every image
        (not faults) to ``path``, for :meth:`from_export` in another
        process, e.g. the CLI's ``warm`` under test."""
        with open(path, 'w') as f:
            json.dump({'directory': self.directory, 'owner': self.owner,
                       'images': self._images,
                       'locations': self._locations}, f, default=str)

    @classmethod
    def from_export(cls, path: str) -> 'LocalImageService':
        with open(path) as f:
            exported = json.load(f)
        service = cls(exported['directory'], exported['owner'])
        service._images = exported['images']
        service._locations = {i: exported.get('locations', {}).get(i, [])
                              for i in service._images}
        return service

    # -- internals ------------------------------------------------------
    def _path(self, image_id: str) -> str:
        return os.path.join(self.directory, image_id)

    @staticmethod
    def _chunks(path: str) -> Iterator[bytes]:
        with open(path, 'rb') as f:
            while chunk := f.read(FILE_CHUNK):
                yield chunk

    @staticmethod
    def _served(path: str) -> Iterator[bytes]:
        """The image as glanceclient hands it to Cinder: DOWNLOAD_CHUNK
        chunks, each a read that yields to other green threads under eventlet
        (glanceclient's reads are socket reads; ``time.sleep(0)`` is the
        same cooperative yield under eventlet's monkey patching)."""
        with open(path, 'rb') as f:
            while chunk := f.read(DOWNLOAD_CHUNK):
                time.sleep(0)
                yield chunk

    @staticmethod
    def _verified(chunks: Iterator[bytes],
                  meta: dict[str, Any]) -> Iterator[bytes]:
        """python-glanceclient's check of a download (``images.data``)."""
        if meta.get('os_hash_value'):
            return glanceclient_utils.serious_integrity_iter(
                chunks, hashlib.new(meta['os_hash_algo']),
                meta['os_hash_value'])
        if meta.get('checksum'):
            return glanceclient_utils.integrity_iter(chunks, meta['checksum'])
        return chunks

    @staticmethod
    def _faulty(chunks: Iterator[bytes], kind: str,
                after_bytes: int) -> Iterator[bytes]:
        sent = 0
        for chunk in chunks:
            if kind == 'slow':
                if sent >= after_bytes:
                    time.sleep(len(chunk) / SLOW_RATE)
                sent += len(chunk)
                yield chunk
                continue
            if sent + len(chunk) > after_bytes:
                chunk = chunk[:after_bytes - sent]
                if chunk:
                    yield chunk
                if kind == 'error':
                    raise IOError('connection reset by Glance (injected)')
                return
            sent += len(chunk)
            yield chunk

    def _store_in_rbd(self, image_id: str, path: str) -> None:
        import rbd
        size = os.path.getsize(path)
        with self._rados() as cluster, \
                cluster.open_ioctx(self.images_pool) as ioctx:
            rbd.RBD().create(ioctx, image_id, size, old_format=False,
                             features=rbd.RBD_FEATURE_LAYERING)
            with rbd.Image(ioctx, image_id) as image:
                disk_images.write_to_rbd(image, path)
                image.create_snap(GLANCE_RBD_SNAPSHOT)
                image.protect_snap(GLANCE_RBD_SNAPSHOT)
            fsid = cluster.get_fsid()
        self.add_location(image_id, 'rbd://%s/%s/%s/%s' % (
            fsid, self.images_pool, image_id, GLANCE_RBD_SNAPSHOT),
            {'store': 'rbd'})

    def _remove_from_rbd(self, image_id: str) -> None:
        import rbd
        with self._rados() as cluster, \
                cluster.open_ioctx(self.images_pool) as ioctx:
            with contextlib.suppress(rbd.ImageNotFound):
                with rbd.Image(ioctx, image_id) as image:
                    with contextlib.suppress(rbd.InvalidArgument):
                        image.unprotect_snap(GLANCE_RBD_SNAPSHOT)
                    image.remove_snap(GLANCE_RBD_SNAPSHOT)
                rbd.RBD().remove(ioctx, image_id)
