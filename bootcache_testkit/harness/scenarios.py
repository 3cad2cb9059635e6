"""The create-from-image scenarios, one per path Cinder can take.

The functional tests assert on them, the demo prints them, the bench times
them for upstream's driver and ours: one definition of each path, so the
three can never drift apart.

=================  ======================================  ==============
scenario           how the image is offered                expected path
=================  ======================================  ==============
glance-rbd         Glance rbd store location               COW clone
cinder-volume      Glance cinder store, cinder://VOLUME    volume clone
image-cache        file store, image-volume cache on:
  cache-miss       first create                            download+entry
  cache-hit        same image again                        cache clone
download-raw       file store, raw                         download
download-qcow2     file store, qcow2                       download+convert
boot-cache         file store, a fresh raw image, twice:
  boot-cache-first   first create                          download
  boot-cache-second  second create                         cache clone
boot-cache-qcow2   the same with a fresh qcow2 image       download+convert
boot-cache-4x      a raw image 4x larger (bench: memory)   download
boot-cache-8x      the same, an image 8x larger (bench)    cache clone
boot-cache-luks    a fresh raw image, twice, into volumes  download,
                   of a LUKS volume type (front-end, luks, then the cache
                   aes-xts-plain64, 256-bit key; Cinder's
                   fixed-key manager)
qcow2-rbd-store    Glance rbd store, qcow2 (bench)         convert from
                                                           the snapshot
qcow2-http         file store, qcow2 (bench: on a backend  download+convert
qcow2-http-local   that stages in RBD, or locally)
=================  ======================================  ==============

Encrypted volumes are read back through qemu-img's LUKS driver with the
volume's passphrase: the plaintext must be the image (the part past the
image is ciphertext of nothing, unchecked).  qemu-img's LUKS header
creation fails at random on hosts whose per-thread CPU clock is coarse
("Unable to get accurate CPU usage", see
``cinder_rbd_bootcache.encryption.volumes``; upstream's ``create_volume``
reports it as a FileNotFoundError of its temporary file); upstream's
driver does not retry it, so an encrypted create that failed so is run
again, up to ``LUKS_ATTEMPTS`` times, and only the create that succeeded
is timed and has its downloads counted.

The boot-cache scenarios run on whatever backend they are given: with the
boot cache on, the first create populates an entry and the second clones
it; upstream's driver downloads both times.  The entry is removed after
the pair, so each run starts uncached and leaves no RBD image.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any
from typing import Callable
from typing import Optional

from oslo_utils import units

from bootcache_testkit.harness import cpu_cost
from bootcache_testkit.harness import disk_images
from bootcache_testkit.harness import verify

SCENARIOS = ('glance-rbd', 'cinder-volume', 'image-cache', 'download-raw',
             'download-qcow2', 'boot-cache', 'boot-cache-qcow2')
#: Scenarios the bench adds: the raw boot-cache pair with a larger image.
SCALED = {'boot-cache-4x': 4, 'boot-cache-8x': 8}
#: Encrypted scenarios: (name, volume type) run as a boot-cache pair.
ENCRYPTED = {'boot-cache-luks': 'bench-luks'}
LUKS_ATTEMPTS = 10
#: Scenarios the bench adds to compare where a qcow2 comes from and where
#: it is staged.  The rbd-store image is shared between rounds; the boot
#: cache's entry of it is removed after each create, so that every create
#: converts.
SOURCES = ('qcow2-rbd-store', 'qcow2-http', 'qcow2-http-local')


@dataclasses.dataclass
class Outcome:
    scenario: str
    backend: str
    seconds: float
    status: str
    downloads: int
    verified: bool
    detail: str
    parent: Optional[str]
    rss_growth: int = 0
    error: Optional[str] = None
    volume_id: Optional[str] = None
    cpu_seconds: float = 0.0
    #: The create's CPU seconds in this process, its children and the
    #: OSDs (``cpu_cost``); ``cpu_seconds`` is the process's part.
    cpu: cpu_cost.CpuSeconds = cpu_cost.CpuSeconds()

    @property
    def ok(self) -> bool:
        return self.status == 'available' and self.verified


class RSSSampler:
    """Peak resident memory growth of this process while a block runs.

    Sampled from /proc every 10 ms in a thread: ru_maxrss is process-wide
    and never goes down, so it cannot attribute a peak to one create.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak_growth = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> 'RSSSampler':
        self._base = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_growth = max(self.peak_growth, self.rss() - self._base)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_growth = max(self.peak_growth, self.rss() - self._base)


class ScenarioRunner:
    """Prepares images once, runs scenarios against any BackendUnderTest."""

    def __init__(self, process: Any, virtual_size: int = 64 * units.Mi,
                 data_bytes: int = 16 * units.Mi, volume_gb: int = 1) -> None:
        self.process = process
        self.sandbox = process.sandbox
        self.images = process.image_service
        self.virtual_size = virtual_size
        self.data_bytes = data_bytes
        self.volume_gb = volume_gb
        self.disks = os.path.join(process.workdir, 'disks')
        self._shared: dict[tuple, dict] = {}

    # -- images -----------------------------------------------------------
    def disk(self, disk_format: str) -> tuple[str, str]:
        return disk_images.cached(self.disks, self.virtual_size,
                                  self.data_bytes, disk_format)

    def image(self, disk_format: str, store: str,
              shared: bool = True) -> dict:
        """An image in ``store``; shared ones are uploaded once."""
        key = (disk_format, store)
        if shared and key in self._shared:
            return self._shared[key]
        path, _raw = self.disk(disk_format)
        meta = self.images.add(path, disk_format, store=store)
        if shared:
            self._shared[key] = meta
        return meta

    def image_volume(self, backend: Any, meta: dict) -> Any:
        """A volume holding the image, as Glance's cinder store makes it."""
        volume = backend.new_volume(self.volume_gb)
        backend.manager.create_volume(self.process.context(), volume,
                                      allow_reschedule=False)
        volume.refresh()
        _path, raw = self.disk(meta['disk_format'])
        with self.sandbox.client() as cluster, \
                cluster.open_ioctx(backend.pool) as ioctx:
            import rbd
            with rbd.Image(ioctx, volume.name) as image:
                disk_images.write_to_rbd(image, raw)
        self.images.add_location(meta['id'], 'cinder://%s' % volume.id,
                                 {'store': 'cinder'})
        return volume

    def cleanup_images(self) -> None:
        for meta in self._shared.values():
            self.images.delete(meta['id'])
        self._shared.clear()

    # -- running ------------------------------------------------------------
    def create(self, backend: Any, scenario: str, meta: dict,
               keep: bool = False, raw_path: Optional[str] = None,
               volume_gb: Optional[int] = None,
               volume_type: Optional[str] = None) -> Outcome:
        """One create through the real flow, measured and verified.

        ``raw_path`` is the image's content as raw, when the image is not
        one of the runner's own (``disk``).  ``volume_type`` names an
        encrypted type of ``encryption``: the volume gets a key and is
        read back through LUKS.
        """
        volume_gb = volume_gb or self.volume_gb
        before = self.images.downloads[meta['id']]
        if volume_type:
            result, rss, before = self._create_encrypted(
                backend, meta, volume_gb, volume_type)
        else:
            with RSSSampler() as rss:
                result = backend.create_from_image(meta['id'], volume_gb)
        volume = result.volume
        downloads = self.images.downloads[meta['id']] - before
        verified, detail, parent = False, 'not checked', None
        if volume.status == 'available' and volume_type:
            raw = raw_path or self.disk(meta['disk_format'])[1]
            verified, detail = self._luks_matches(volume, raw)
        elif volume.status == 'available':
            raw = raw_path or self.disk(meta['disk_format'])[1]
            with self.sandbox.client() as cluster, \
                    cluster.open_ioctx(backend.pool) as ioctx:
                # The raw content's size: a vhd's virtual size is rounded up
                # to its disk geometry, and the rest must read as zeros.
                verified, detail = verify.volume_matches(
                    ioctx, volume.name, raw, os.path.getsize(raw))
                parent = parent_of(ioctx, volume.name)
            size = self._rbd_size(backend, volume.name)
            if verified and size != volume.size * units.Gi:
                verified, detail = False, 'RBD size %d, want %d GiB' % (
                    size, volume.size)
        outcome = Outcome(scenario, backend.name, result.seconds,
                          volume.status, downloads, verified, detail, parent,
                          rss.peak_growth,
                          repr(result.error) if result.error else None,
                          volume.id, result.cpu_seconds, result.cpu)
        if not keep:
            backend.delete(volume)
        return outcome

    def _create_encrypted(self, backend: Any, meta: dict, volume_gb: int,
                          volume_type: str
                          ) -> tuple[Any, 'RSSSampler', int]:
        """The create's result and memory, and the image's download
        count before the attempt that counts (the last)."""
        from cinder import context as cinder_context

        from bootcache_testkit.harness import encryption
        encryption.configure_key_manager()
        type_id = encryption.volume_type(volume_type)
        for attempt in range(1, LUKS_ATTEMPTS + 1):
            before = self.images.downloads[meta['id']]
            key_id = encryption.new_key(cinder_context.get_admin_context(),
                                        type_id)
            with RSSSampler() as rss:
                result = backend.create_from_image(
                    meta['id'], volume_gb, volume_type_id=type_id,
                    encryption_key_id=key_id)
            # Upstream's create_volume removes its temporary container
            # file after a failed qemu-img, which qemu-img has removed
            # already: its clock-check failure surfaces as this.
            masked = (isinstance(result.error, FileNotFoundError) and
                      backend.driver.__class__.__name__ == 'RBDDriver')
            flaky = masked or ('Unable to get accurate CPU usage' in
                               repr(result.error))
            if not flaky or attempt == LUKS_ATTEMPTS:
                return result, rss, before
            backend.delete(result.volume)

    def _luks_matches(self, volume: Any, raw: str) -> tuple[bool, str]:
        from bootcache_testkit.harness import encryption
        length = os.path.getsize(raw)
        plain = os.path.join(self.process.workdir, 'luks-read-back')
        with encryption.LuksReader(self.sandbox) as reader:
            virtual = reader.info(volume.name)['virtual-size']
            if virtual < length:
                return False, 'LUKS payload %d bytes, image %d' % (
                    virtual, length)
            reader.plaintext(volume.name, length, plain)
        try:
            expected, actual = (verify.file_digest(raw),
                                verify.file_digest(plain))
        finally:
            os.unlink(plain)
        if actual != expected:
            return False, 'plaintext differs (sha256 %s, want %s)' % (
                actual[:12], expected[:12])
        return True, 'LUKS, %d bytes for the guest, plaintext sha256 %s' % (
            virtual, expected[:12])

    def _rbd_size(self, backend: Any, name: str) -> int:
        import rbd
        with self.sandbox.client() as cluster, \
                cluster.open_ioctx(backend.pool) as ioctx, \
                rbd.Image(ioctx, name, read_only=True) as image:
            return image.size()

    def run(self, scenario: str, backend: Any,
            cache_backend: Any = None) -> list[Outcome]:
        """Run one scenario; cache scenarios need a cache-enabled backend.

        ``image-cache`` runs on a fresh image and returns two outcomes,
        ``cache-miss`` then ``cache-hit``.
        """
        steps: dict[str, Callable[[], list[Outcome]]] = {
            'glance-rbd': lambda: [self.create(
                backend, scenario, self.image('raw', 'rbd'))],
            'cinder-volume': lambda: self._cinder_volume(backend),
            'image-cache': lambda: self._cache_pair(cache_backend),
            'download-raw': lambda: [self.create(
                backend, scenario, self.image('raw', 'file'))],
            'download-qcow2': lambda: [self.create(
                backend, scenario, self.image('qcow2', 'file'))],
            'boot-cache': lambda: self._boot_cache_pair(backend, scenario),
            'boot-cache-qcow2': lambda: self._boot_cache_pair(
                backend, scenario, disk_format='qcow2'),
            'qcow2-rbd-store': lambda: self._uncached(
                backend, scenario, self.image('qcow2', 'rbd')),
            'qcow2-http': lambda: [self.create(
                backend, scenario, self.image('qcow2', 'file'))],
        }
        steps['qcow2-http-local'] = steps['qcow2-http']
        if scenario in SCALED:
            return self._boot_cache_pair(backend, scenario, SCALED[scenario])
        if scenario in ENCRYPTED:
            # One GiB more than the image: upstream's encrypted volume from
            # an image gives the guest its size less the LUKS header (it
            # resizes the imported container, header included), so an
            # image of the volume's own size loses its last 2 MiB there.
            return self._boot_cache_pair(backend, scenario,
                                         volume_type=ENCRYPTED[scenario],
                                         extra_gb=1)
        return steps[scenario]()

    def _uncached(self, backend: Any, scenario: str,
                  meta: dict) -> list[Outcome]:
        """One create from ``meta``, whose boot-cache entry (if the
        create made one) is removed after it."""
        try:
            return [self.create(backend, scenario, meta)]
        finally:
            self.wait_for_boot_cache_entry(backend, meta)
            self.remove_boot_cache_entry(backend, meta['id'])

    def _cinder_volume(self, backend: Any) -> list[Outcome]:
        meta = self.image('raw', 'cinder', shared=False)
        image_volume = self.image_volume(backend, meta)
        try:
            return [self.create(backend, 'cinder-volume', meta)]
        finally:
            backend.delete(image_volume)
            self.images.delete(meta['id'])

    def _cache_pair(self, backend: Any) -> list[Outcome]:
        if backend is None:
            raise ValueError('cache scenarios need a backend with '
                             'image_volume_cache_enabled')
        meta = self.image('raw', 'file', shared=False)
        try:
            miss = self.create(backend, 'cache-miss', meta, keep=True)
            hit = self.create(backend, 'cache-hit', meta, keep=True)
            return [miss, hit]
        finally:
            backend.delete_all()
            self.images.delete(meta['id'])

    def _boot_cache_pair(self, backend: Any, scenario: str,
                         scale: int = 1, disk_format: str = 'raw',
                         volume_type: Optional[str] = None,
                         extra_gb: int = 0) -> list[Outcome]:
        image, raw = disk_images.cached(self.disks, self.virtual_size * scale,
                                        self.data_bytes * scale, disk_format)
        volume_gb = self.volume_gb * scale + extra_gb
        meta = self.images.add(image, disk_format, store='file')
        try:
            first = self.create(backend, scenario + '-first', meta,
                                raw_path=raw, volume_gb=volume_gb,
                                volume_type=volume_type)
            self.wait_for_boot_cache_entry(backend, meta)
            second = self.create(backend, scenario + '-second', meta,
                                 raw_path=raw, volume_gb=volume_gb,
                                 volume_type=volume_type)
            return [first, second]
        finally:
            self.images.delete(meta['id'])
            self.remove_boot_cache_entry(backend, meta['id'])

    @staticmethod
    def wait_for_boot_cache_entry(backend: Any, meta: dict) -> None:
        """Until the entries this process populated are finished.  The
        create that populates an entry returns once its volume holds the
        image and finishes the entry in the background; a "second create"
        comes after that, not while it happens (the storm scenarios time
        that case)."""
        backend.join_finishers()

    def remove_boot_cache_entry(self, backend: Any, image_id: str) -> None:
        """Remove the image's entry, as an operator's evict would."""
        from cinder_rbd_bootcache.bootcache import catalog
        pool = backend.driver.configuration.safe_get('bootcache_pool')
        with self.sandbox.client() as cluster, \
                cluster.open_ioctx(pool or backend.pool) as ioctx:
            found = catalog.Catalog(ioctx)
            info = found.entry(image_id)
            if info is not None:
                found.remove(info, 'the scenario is over', wait=60)


def parent_of(ioctx: Any, name: str) -> Optional[str]:
    """``pool/image@snap`` the RBD image is a clone of, or None."""
    import rbd
    with rbd.Image(ioctx, name, read_only=True) as image:
        try:
            pool, parent, snap = image.parent_info()
        except rbd.ImageNotFound:
            return None
    return '%s/%s@%s' % (pool, parent, snap)
