"""``warm``: populate entries before a rollout, so its boot storm clones.

The same path as the driver's cache miss (``BootCache.get_or_populate``:
the population lock in Ceph, the import pipeline, verification), so a
warm and a create of the same image at the same time still download it
once.  A warm counts neither a hit nor a miss: it makes no volume.
"""

from __future__ import annotations

import time
from typing import Any

from cliff import lister

from cinder_rbd_bootcache import cache
from cinder_rbd_bootcache.image_facts import ImageFacts
from cinder_rbd_bootcache import image_format
from cinder_rbd_bootcache.cli import progress_bar


class Warm(lister.Lister):
    """Populate boot-cache entries of Glance images ahead of use."""

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
                self.app.LOG.error('Image %s was not cached: %s', image_id,
                                   exc)
                self.app.LOG.debug('Why', exc_info=True)
                result = 'failed: %s' % exc
            rows.append((image_id, result,
                         round(time.monotonic() - started, 2)))
        return ('Image ID', 'Result', 'Seconds'), rows

    def _warm(self, backend: Any, images: Any, context: Any,
              image_id: str) -> str:
        try:
            facts = ImageFacts.from_glance(images.show(context, image_id))
        except Exception as exc:
            raise RuntimeError('Glance could not show the image (%s); '
                               'check the id and the [glance] credentials '
                               'in cinder.conf' % exc) from exc
        if not image_format.supported(facts):
            raise ValueError('disk_format %s / container_format %s cannot '
                             'be cached' % (facts.disk_format,
                                            facts.container_format))
        bar = progress_bar.ProgressBar(image_id, self.app.stderr)
        boot_cache = backend.boot_cache(on_progress=bar)
        try:
            if boot_cache.lookup(facts):
                return 'already cached'
            boot_cache.get_or_populate(context, images, facts,
                                       count=False)
        except cache.NotCacheable as exc:
            raise ValueError(str(exc)) from exc
        finally:
            bar.close()
        return 'cached'

    def run(self, parsed_args: Any) -> int:
        result = super().run(parsed_args)
        return 1 if self.failed else result
