"""``cinder-rbd-bootcache`` with the harness's Glance stand-in.

``python -m bootcache_testkit.harness.cli EXPORT.json ARGS...`` runs the
real command with ARGS; only where ``warm`` gets images from is replaced,
by a :class:`~bootcache_testkit.harness.image_service.LocalImageService`
exported by the test (``LocalImageService.export``) -- the same seam the
harness uses for Cinder's flow.  Downloads are counted in EXPORT.json's
directory as ``downloads.json``, so the test can see what warm fetched.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any
from typing import Optional

from cinder_rbd_bootcache.cli import app  # first: it sets up the runtime
from bootcache_testkit.harness import image_service  # noqa: H306
from cinder_rbd_bootcache.cli import backend


def write_conf(path: str, sandbox: Any, conversion_dir: str,
               backends: tuple = ('ceph',), lease: int = 3,
               pool: str = 'volumes', driver: Optional[str] = None,
               **options: Any) -> str:
    """A cinder.conf for the sandbox with our driver (or ``driver``) in
    each backend."""
    from bootcache_testkit.harness import cinder_process
    driver = driver or cinder_process.OUR_DRIVER
    lines = ['[DEFAULT]', 'enabled_backends = %s' % ','.join(backends),
             'image_conversion_dir = %s' % conversion_dir,
             'state_path = %s' % os.path.dirname(path)]
    for name in backends:
        lines += ['', '[%s]' % name,
                  'volume_driver = %s' % driver,
                  'volume_backend_name = %s' % name,
                  'rbd_pool = %s' % pool,
                  'rbd_ceph_conf = %s' % sandbox.conf_path,
                  'rbd_user = %s' % sandbox.client_name,
                  'rados_connect_timeout = 10',
                  'bootcache_lock_lease = %d' % lease]
        lines += ['%s = %s' % item for item in options.items()]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def main(argv: list[str]) -> int:
    export, args = argv[0], argv[1:]
    images = image_service.LocalImageService.from_export(export)
    backend.Backend.image_service_factory = staticmethod(lambda: images)
    try:
        return app.main(args)
    finally:
        with open(os.path.join(os.path.dirname(export), 'downloads.json'),
                  'w') as f:
            json.dump(dict(images.downloads), f)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
