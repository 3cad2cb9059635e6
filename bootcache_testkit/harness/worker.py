"""A second cinder-volume process, for tests that need more than one.

``python -m bootcache_testkit.harness.worker --sandbox DIR ...`` starts
its own in-process Cinder (own sqlite, own Glance stand-in holding the same
image bytes under the same image id) against a running sandbox, then:

1. prints ``{"ready": true}`` and waits for a line on stdin, so a test can
   start several workers and release them at the same moment;
2. calls ``clone_image`` of our driver for ``--volumes`` new volumes at
   once (one thread each), as Cinder's flow would;
3. prints one JSON line: its downloads, and for every volume whether it
   was cloned, its clone parent and whether its bytes match the image;
4. deletes its volumes and exits.

Killing it with SIGKILL mid-population is what the kill -9 test does.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys


def _report(**fields) -> None:
    print(json.dumps(fields), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sandbox', required=True)
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--image', required=True, help='raw image file')
    parser.add_argument('--image-id', required=True)
    parser.add_argument('--volumes', type=int, default=1)
    parser.add_argument('--lease', type=int, default=3)
    parser.add_argument('--slow-after', type=int, default=None,
                        help='serve 4 MiB a second after these bytes')
    args = parser.parse_args(argv)

    from bootcache_testkit.harness import runtime
    runtime.patch()
    from bootcache_testkit.harness import cinder_process
    from bootcache_testkit.harness import scenarios
    from bootcache_testkit.harness import verify
    from bootcache_testkit import sandbox as ceph_sandbox

    sandbox = ceph_sandbox.Sandbox(args.sandbox)
    process = cinder_process.CinderProcess(args.workdir, sandbox)
    try:
        backend = cinder_process.BackendUnderTest(
            process, 'bootcache', cinder_process.OUR_DRIVER,
            bootcache_enabled=True, bootcache_lock_lease=args.lease)
        images = process.image_service
        meta = images.add(args.image, 'raw', image_id=args.image_id)
        if args.slow_after is not None:
            images.inject_fault(meta['id'], 'slow', args.slow_after)
        context = process.context()
        volumes = [backend.new_volume(1) for _ in range(args.volumes)]
        _report(ready=True, pid=os.getpid(),
                volumes=[volume.name for volume in volumes])
        sys.stdin.readline()

        def clone(volume):
            return backend.driver.clone_image(
                context, volume, (None, []), images.show(context, meta['id']),
                images)[1]

        with concurrent.futures.ThreadPoolExecutor(args.volumes) as pool:
            cloned = list(pool.map(clone, volumes))
        # A population here finishes its entry in the background.
        from cinder_rbd_bootcache import cache
        cache.join_finishers()
        results = []
        with sandbox.client() as cluster, \
                cluster.open_ioctx(backend.pool) as ioctx:
            for volume, ok in zip(volumes, cloned):
                matches, detail = verify.volume_matches(
                    ioctx, volume.name, args.image, meta['size'])
                results.append({'cloned': ok, 'matches': matches,
                                'detail': detail,
                                'parent': scenarios.parent_of(ioctx,
                                                              volume.name)})
        _report(downloads=images.downloads[meta['id']], volumes=results)
        backend.delete_all()
    finally:
        process.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
