"""``python -m bootcache_testkit.sandbox up|down|status DIR``.

``up`` leaves the daemons running detached from this process (so they
outlive it) and prints the sandbox's facts as JSON; ``down`` stops them and
removes DIR.  Tests, demo and bench use :class:`Sandbox` directly instead,
which ties the daemons' lives to the calling process.
"""

import argparse
import json
import sys

from oslo_utils import units

from bootcache_testkit.sandbox import Sandbox
from bootcache_testkit.sandbox import SandboxError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m bootcache_testkit.sandbox',
        description='A throwaway single-node Ceph cluster on 127.0.0.1.')
    parser.add_argument('action', choices=('up', 'down', 'status'))
    parser.add_argument('directory',
                        help='where the cluster lives (created by up, '
                             'removed by down)')
    parser.add_argument('--memstore-gib', type=float, default=4,
                        help='RAM the OSD may hold, in GiB (default 4); '
                             'with bluestore, the size of its block file')
    parser.add_argument('--objectstore', choices=('memstore', 'bluestore'),
                        default=None,
                        help='the OSD\'s store: memstore (default; fast, '
                             'lost when the OSD stops) or bluestore (a '
                             'sparse file; survives an OSD restart)')
    args = parser.parse_args(argv)
    sandbox = Sandbox(args.directory,
                      memstore_bytes=int(args.memstore_gib * units.Gi),
                      objectstore=args.objectstore)
    try:
        if args.action == 'up':
            sandbox.up(tie_to_parent=False)
        elif args.action == 'down':
            sandbox.down()
            print(json.dumps({'directory': args.directory, 'stopped': True}))
            return 0
        print(json.dumps(sandbox.status(), indent=2))
    except SandboxError as exc:
        print('sandbox %s failed: %s' % (args.action, exc), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
