#!/usr/bin/env python3
"""Make Debian's Ceph Python bindings importable in the running venv.

The rados and rbd bindings are not on PyPI; they come with Debian's
python3-rados / python3-rbd, built for CPython 3.11.  They import fine in any
CPython 3.11 (same ABI tag), so we symlink the two extension modules into the
venv's site-packages instead of pointing a .pth file at the whole of
/usr/lib/python3/dist-packages (which would drag Debian's versions of oslo,
six, etc. into the venv).  Run by tox before every environment.
"""

import glob
import os
import sys
import sysconfig

DIST = '/usr/lib/python3/dist-packages'


def main() -> int:
    target = sysconfig.get_paths()['platlib']
    tag = sysconfig.get_config_var('EXT_SUFFIX')  # .cpython-311-x86_64-...so
    missing = []
    for module in ('rados', 'rbd'):
        sources = glob.glob(os.path.join(DIST, module + tag))
        if not sources:
            missing.append(module)
            continue
        link = os.path.join(target, os.path.basename(sources[0]))
        if os.path.islink(link) or os.path.exists(link):
            os.unlink(link)
        os.symlink(sources[0], link)
    if missing:
        print('link_ceph_bindings: no %s in %s for this Python (%s); '
              'install python3-rados and python3-rbd (bindep.txt) and use '
              'CPython %d.%d like Debian 12' % (
                  ', '.join(missing), DIST, tag, *sys.version_info[:2]),
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
