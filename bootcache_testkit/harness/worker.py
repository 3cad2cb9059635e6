"""A second cinder-volume process, for tests that need more than one.

``python -m bootcache_testkit.harness.worker --sandbox DIR ...`` starts
its own in-process Cinder (own sqlite, own Glance stand-in holding the same
image bytes under the same image id) against a running sandbox, then:

1. prints ``{"ready": true}`` and waits for a line on stdin, so a test can
   start several workers and release them at the same moment;
2. calls ``clone_image`` of our driver for ``--volumes`` new volumes of
   each image at once (one thread each), as Cinder's flow would;
3. prints one JSON line: its downloads (``downloads`` in all,
   ``downloads_by_image`` per image id), and for every volume its image,
   whether it was cloned, its clone parent and whether its bytes match
   the image (or, for a create that failed, ``error``: the exception's
   class and message), and the seconds its creates took together;
4. deletes its volumes and exits.

``--image`` and ``--image-id`` may be given several times, in pairs (the
scale bench releases ten workers on five images at once); one pair is
what the functional tests pass.

Killing it with SIGKILL mid-population is what the kill -9 tests do;
``--pause-at STEP`` stops it for good at a step of the population first
(``PAUSE_POINTS``), so that the kill lands exactly there.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import time


def _report(**fields) -> None:
    print(json.dumps(fields), flush=True)


#: Steps of a population a worker can stop at (``--pause-at``): the
#: method of ``bootcache.population.Population`` it stops in, and whether
#: before it runs or when it calls what follows.
#:
#: * ``fill``: the lock is held, nothing is created yet;
#: * ``finish``: the volume holds the image and was handed out, the entry
#:   is half-built and not finished;
#: * ``publish``: the finish has snapshotted, protected and renamed the
#:   entry, and not yet recorded it as ready in the index.
PAUSE_POINTS = {'fill': '_fill', 'finish': 'finish', 'publish': 'publish'}


def _pause_at(step: str) -> None:
    """Make this process stop for good at ``step`` of every population
    (the test kit's own patch of the package's classes, in this process
    only)."""
    import threading

    from cinder_rbd_bootcache.bootcache import catalog
    from cinder_rbd_bootcache.bootcache import population

    def pause(*_args, **_kwargs):
        _report(paused=step)
        threading.Event().wait()

    if step == 'publish':
        # Catalog.publish records the renamed entry as ready.
        catalog.Catalog.publish = pause
    else:
        setattr(population.Population, PAUSE_POINTS[step], pause)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sandbox', required=True)
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--image', required=True, action='append',
                        help='image file (repeat for several images)')
    parser.add_argument('--image-id', required=True, action='append',
                        help='its id, one per --image, in the same order')
    parser.add_argument('--disk-format', default='raw',
                        help='the disk_format of every --image (a volume '
                             '"matches" when it holds the file\'s bytes: '
                             'meaningful for raw only)')
    parser.add_argument('--volumes', type=int, default=1,
                        help='volumes per image')
    parser.add_argument('--lease', type=int, default=3)
    parser.add_argument('--slow-after', type=int, default=None,
                        help='serve 4 MiB a second after these bytes')
    parser.add_argument('--option', action='append', default=[],
                        metavar='NAME=VALUE',
                        help='a backend option (repeatable), e.g. '
                             'bootcache_import_stall_timeout=10')
    parser.add_argument('--pause-at', choices=sorted(PAUSE_POINTS),
                        help='stop for good at this step of a population, '
                             'after printing {"paused": STEP}: the test '
                             'then kills the process there')
    args = parser.parse_args(argv)
    if len(args.image) != len(args.image_id):
        parser.error('give one --image-id per --image')

    from bootcache_testkit.harness import runtime
    runtime.patch()
    if args.pause_at:
        _pause_at(args.pause_at)
    from bootcache_testkit.harness import cinder_process
    from bootcache_testkit.harness import scenarios
    from bootcache_testkit.harness import verify
    from bootcache_testkit import sandbox as ceph_sandbox

    sandbox = ceph_sandbox.Sandbox(args.sandbox)
    process = cinder_process.CinderProcess(args.workdir, sandbox)
    try:
        backend = cinder_process.BackendUnderTest(
            process, 'bootcache', cinder_process.OUR_DRIVER,
            bootcache_enabled=True, bootcache_lock_lease=args.lease,
            **dict(option.split('=', 1) for option in args.option))
        images = process.image_service
        metas = [images.add(path, args.disk_format, image_id=image_id)
                 for path, image_id in zip(args.image, args.image_id)]
        if args.slow_after is not None:
            for meta in metas:
                images.inject_fault(meta['id'], 'slow', args.slow_after)
        context = process.context()
        # (image, volume) pairs: every image's volumes, image by image.
        work = [(meta, path, backend.new_volume(1))
                for meta, path in zip(metas, args.image)
                for _ in range(args.volumes)]
        _report(ready=True, pid=os.getpid(),
                volumes=[volume.name for _meta, _path, volume in work])
        sys.stdin.readline()

        def clone(item):
            meta, _path, volume = item
            try:
                return backend.driver.clone_image(
                    context, volume, (None, []),
                    images.show(context, meta['id']), images)[1]
            except Exception as exc:
                return '%s: %s' % (type(exc).__name__, exc)

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(len(work)) as pool:
            cloned = list(pool.map(clone, work))
        seconds = time.monotonic() - started
        # A population here finishes its entry in the background.
        backend.join_finishers()
        results = []
        with sandbox.client() as cluster, \
                cluster.open_ioctx(backend.pool) as ioctx:
            for (meta, path, volume), ok in zip(work, cloned):
                if isinstance(ok, str):
                    results.append({'image_id': meta['id'], 'error': ok,
                                    'cloned': False, 'matches': False})
                    continue
                matches, detail = verify.volume_matches(
                    ioctx, volume.name, path, meta['size'])
                results.append({'image_id': meta['id'], 'cloned': ok,
                                'matches': matches, 'detail': detail,
                                'parent': scenarios.parent_of(ioctx,
                                                              volume.name)})
        by_image = {meta['id']: images.downloads[meta['id']]
                    for meta in metas}
        _report(downloads=sum(by_image.values()),
                downloads_by_image=by_image, seconds=seconds,
                volumes=results)
        backend.delete_all()
    finally:
        process.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
