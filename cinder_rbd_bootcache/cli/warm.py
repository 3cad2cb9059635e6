"""``warm``: populate entries before a rollout, so its boot storm clones.

The same path as the driver's cache miss (``BootCache.get_or_populate``:
the population lock in Ceph, the import pipeline, verification), so a
warm and a create of the same image at the same time still download it
once.  A warm counts neither a hit nor a miss: it makes no volume.

Only what creates use is warmed: an image whose creates clone Glance's
rbd store snapshot (the driver's first path, decided by the driver's own
``glance_clone_source`` on the locations Cinder reads through the
``[glance]`` service user), or that the driver leaves to Cinder's flow
(``clone_policy.why_not_import``), is reported "not cached" with the
reason, downloads nothing and is no failure.
"""

from __future__ import annotations

import time
from typing import Any
from typing import Callable
from typing import Optional

from cliff import lister

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.cli import progress_bar
from cinder_rbd_bootcache import clone_policy
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.glance import formats as image_format
from cinder_rbd_bootcache.glance import locations

#: The result of an image that creates never take from the boot cache.
NOT_CACHED = 'not cached: %s'


class Warm(lister.Lister):
    """Populate boot-cache entries of Glance images ahead of use.

    An image whose creates clone Glance's rbd store snapshot, or that
    the driver leaves to Cinder's flow, is not cached and says why; it
    is no failure.  A failure is one row of the table (exit status 1);
    -v also logs it, --debug with its traceback.
    """

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument('image_ids', metavar='IMAGE_ID', nargs='+',
                            help='Glance image ids')
        return parser

    def take_action(self, parsed_args: Any) -> tuple:
        backend = self.app.backend
        images = backend.image_service()
        context = backend.context()
        self.failed = 0
        rows = []
        for image_id in parsed_args.image_ids:
            started = time.monotonic()
            try:
                result = self._warm(backend, images, context, image_id)
            except Exception as exc:
                self.failed += 1
                # The table says it once; -v and --debug say more.
                self.app.LOG.info('Image %s was not cached: %s', image_id,
                                  exc)
                self.app.LOG.debug('Why', exc_info=True)
                result = 'failed: %s' % exc
            rows.append((image_id, result,
                         round(time.monotonic() - started, 2)))
        return ('Image ID', 'Result', 'Seconds'), rows

    def _warm(self, backend: Any, images: Any, context: Any,
              image_id: str) -> str:
        bar = progress_bar.ProgressBar(image_id, self.app.stderr)
        try:
            return warm_image(backend, images, context, image_id, bar)
        finally:
            bar.close()

    def run(self, parsed_args: Any) -> int:
        result = super().run(parsed_args)
        return 1 if self.failed else result


class Refused(ValueError):
    """The image can have no entry (its format, its unknown size)."""


def warm_image(backend: Any, images: Any, context: Any, image_id: str,
               on_progress: Optional[Callable] = None) -> str:
    """Populate the image's entry as a create's miss does (single-flight
    with creates and other hosts); the result: ``cached``, ``already
    cached`` or :data:`NOT_CACHED` with the reason.  Raises Refused for
    an image no entry can hold, RuntimeError when Glance cannot say."""
    try:
        meta = images.show(context, image_id)
        facts = ImageFacts.from_glance(meta)
    except Exception as exc:
        raise RuntimeError('Glance could not show the image (%s); '
                           'check the id and the [glance] credentials '
                           'in cinder.conf' % exc) from exc
    if meta.get('status') != 'active':
        # Glance announces image.activate before it saves the image's
        # checksum and hashes; its image.update once saved warms it.
        return NOT_CACHED % ('the image is %s in Glance, not active'
                             % meta.get('status'))
    if not image_format.supported(facts):
        raise Refused('disk_format %s / container_format %s cannot '
                      'be cached' % (facts.disk_format,
                                     facts.container_format))
    reason = why_not_warm(backend, images, context, meta, facts)
    if reason:
        return NOT_CACHED % reason
    boot_cache = backend.boot_cache(on_progress=on_progress)
    try:
        if boot_cache.lookup(facts):
            return 'already cached'
        boot_cache.get_or_populate(context, images, facts, count=False)
    except cache.NotCacheable as exc:
        raise Refused(str(exc)) from exc
    return 'cached'


def why_not_warm(backend: Any, images: Any, context: Any,
                 meta: dict, facts: ImageFacts) -> Optional[str]:
    """Why creates of this image never use its entry, or None: the
    driver's own decisions, on the locations Cinder reads."""
    driver = backend.driver()
    try:
        image_location = images.get_location(context, facts.id)
    except Exception as exc:
        raise RuntimeError('Glance could not give the image\'s '
                           'locations (%s); check the [glance] service '
                           'user in cinder.conf' % exc) from exc
    url = driver.glance_clone_source(image_location, meta)
    if url:
        location = locations.parse(url)
        return ('cloned from Glance\'s rbd store (%s/%s@%s)'
                % (location.pool, location.image, location.snapshot))
    return clone_policy.why_not_import(
        facts, image_cache_in_use=driver._image_cache_in_use(),
        boot_cache_enabled=backend.section.bootcache_enabled,
        verify_signatures=backend.conf.verify_glance_signatures)
