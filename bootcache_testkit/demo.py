"""The main job: every create-from-image path, with our driver, for real.

``python -m bootcache_testkit.demo`` (or ``tox -e demo``) starts the
embedded Ceph, runs Cinder's own create_volume flow with
``BootCacheRBDDriver`` along each path, reads every volume back from Ceph to
check its bytes, prints a table, and stops everything again.  Exit status 0
only when every path produced a correct volume and nothing was left behind.
"""

from __future__ import annotations

import argparse
import sys

from bootcache_testkit.harness import disk_images
from bootcache_testkit.harness import runtime


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header])
              for i in range(len(header))]
    line = '  '.join('%%-%ds' % w for w in widths)
    out = [line % tuple(header), line % tuple('-' * w for w in widths)]
    out += [line % tuple(r) for r in rows]
    return '\n'.join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bootcache_testkit.demo',
                                     description=__doc__.splitlines()[0])
    disk_images.add_size_arguments(parser, 256, 64)
    parser.add_argument('--concurrency', choices=runtime.MODES,
                        default=runtime.mode_from_env(),
                        help='run Cinder under native threads or eventlet')
    parser.add_argument('--debug', action='store_true',
                        help='debug logging in the Cinder log file')
    args = parser.parse_args(argv)
    runtime.patch(args.concurrency)

    from oslo_utils import units

    from bootcache_testkit.harness import cinder_process
    from bootcache_testkit.harness import scenarios
    from bootcache_testkit.harness import session

    # One backend per way an operator runs the driver: as installed (boot
    # cache on), boot cache off (so the import paths show), and with
    # Cinder's image-volume cache instead.
    specs = [session.BackendSpec('bootcache', cinder_process.OUR_DRIVER),
             session.BackendSpec('no_bootcache', cinder_process.OUR_DRIVER,
                                 {'bootcache_enabled': False}),
             session.BackendSpec('image_volume_cache',
                                 cinder_process.OUR_DRIVER,
                                 {'image_volume_cache_enabled': True,
                                  'bootcache_enabled': False})]
    print('Starting a single-node Ceph on 127.0.0.1 and Cinder %s in-process '
          '(%s)...' % (_cinder_version(), args.concurrency), flush=True)
    outcomes: list[scenarios.Outcome] = []
    leftovers: dict = {}
    with session.cinder_session(
            specs, virtual_size=args.virtual_mib * units.Mi,
            data_bytes=args.data_mib * units.Mi,
            debug=args.debug) as s:
        for name in scenarios.SCENARIOS:
            print('  %s ...' % name, flush=True)
            # The download paths show the import only with the cache off.
            backend = ('no_bootcache' if name.startswith('download')
                       else 'bootcache')
            outcomes += s.runner.run(name, s.backends[backend],
                                     s.backends['image_volume_cache'])
        for backend in s.backends.values():
            backend.delete_all()
        s.runner.cleanup_images()
        leftovers = s.leftovers()
    rows = [[o.scenario, '%.2f' % o.seconds, o.status, str(o.downloads),
             'yes' if o.verified else 'NO: ' + o.detail, o.parent or '-']
            for o in outcomes]
    print()
    print('BootCacheRBDDriver, %d MiB image (%d MiB data) into 1 GiB volumes'
          % (args.virtual_mib, args.data_mib))
    print(_table(rows, ['path', 'seconds', 'status', 'downloads',
                        'bytes verified', 'clone parent']))
    failed = [o for o in outcomes if not o.ok]
    for o in failed:
        print('FAILED %s: %s %s' % (o.scenario, o.detail, o.error or ''))
    if leftovers:
        print('LEFT BEHIND in Ceph: %s' % leftovers)
    print('Ceph stopped; nothing left running.')
    return 1 if failed or leftovers else 0


def _cinder_version() -> str:
    from importlib import metadata
    return metadata.version('cinder')


if __name__ == '__main__':
    sys.exit(main())
