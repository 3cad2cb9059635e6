"""Run Cinder's own RBD driver unit tests against BootCacheRBDDriver.

The tests are not copied into this repository: they are read from the
sdist of the cinder release installed in this environment (downloaded once
with pip, cached in ``--cache``), and the module is written to ``--workdir``
with every reference to upstream's class rewritten to ours.  Rebinding the
name ``cinder.volume.drivers.rbd.RBDDriver`` instead would recurse:
upstream's methods call ``super(RBDDriver, self)``.

Every test must pass, except those in the differences file (an INI file,
one section per test, ``Class.test_method``, with ``reason`` and
``shown_by``).  The run fails when an unlisted test fails, and when a listed
test passes (then the list is wrong).  The last line printed is the summary.

Run with ``python -m unittest``'s loader, not pytest: cinder's
``TestCase._common_cleanup`` deletes every attribute a test left, including
the one pytest removes itself.
"""

from __future__ import annotations

import argparse
import configparser
import glob
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
import unittest

TEST_PATH = 'cinder/tests/unit/volume/drivers/test_rbd.py'
PACKAGE = 'cinder.tests.unit.volume.drivers'
MODULE = 'upstream_test_rbd'
OUR_CLASS = 'BootCacheRBDDriver'
IMPORT = 'from cinder_rbd_bootcache.driver import BootCacheRBDDriver\n'

# upstream spelling -> ours; applied in this order.
REWRITES = [
    # mock.patch targets, and ManagedRBDTestCase.driver_name (the
    # volume_driver its VolumeManager loads).
    ("'cinder.volume.drivers.rbd.RBDDriver.",
     "'cinder_rbd_bootcache.driver.BootCacheRBDDriver."),
    ('"cinder.volume.drivers.rbd.RBDDriver"',
     '"cinder_rbd_bootcache.driver.BootCacheRBDDriver"'),
    ('driver.RBDDriver', OUR_CLASS),
]


def sdist(version: str, cache: str) -> str:
    """The path of cinder's sdist, downloaded from PyPI if not cached."""
    os.makedirs(cache, exist_ok=True)
    pattern = os.path.join(cache, 'cinder-%s.tar.gz' % version)
    if not glob.glob(pattern):
        subprocess.run([sys.executable, '-m', 'pip', 'download', '-q',
                        '--disable-pip-version-check', '--no-deps',
                        '--no-binary', ':all:', 'cinder==%s' % version,
                        '-d', cache], check=True)
    (found,) = glob.glob(pattern)
    return found


def rewritten_module(archive: str, version: str) -> str:
    """The test module's source, with our class under test."""
    member = 'cinder-%s/%s' % (version, TEST_PATH)
    with tarfile.open(archive) as tar:
        source = tar.extractfile(member).read().decode('utf-8')
    for old, new in REWRITES:
        if old not in source:
            raise SystemExit('upstream-rbd: %r not found in %s; the rewrite '
                             'no longer fits this cinder release' %
                             (old, member))
        source = source.replace(old, new)
    left = re.findall(r'(?<!BootCache)RBDDriver\b', source)
    if left:
        raise SystemExit('upstream-rbd: %d references to RBDDriver left after '
                         'the rewrite of %s; extend REWRITES' %
                         (len(left), member))
    # Next to upstream's own import of the driver module, after
    # cinder.tests.unit chose the concurrency mode (it patches eventlet).
    anchor = 'import cinder.volume.drivers.rbd as driver\n'
    if anchor not in source:
        raise SystemExit('upstream-rbd: %r not found in %s' % (anchor, member))
    return source.replace(anchor, anchor + IMPORT, 1)


def differences(path: str) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    with open(path) as f:
        parser.read_file(f)
    listed = {}
    for name in parser.sections():
        entry = dict(parser[name])
        missing = {'reason', 'shown_by'} - set(entry)
        if missing:
            raise SystemExit('upstream-rbd: %s in %s has no %s' %
                             (name, path, ', '.join(sorted(missing))))
        listed[name] = entry
    return listed


class Result(unittest.TextTestResult):
    """Records each test's outcome by ``Class.test_method``."""

    #: Tests whose tracebacks are not printed (the intended differences).
    quiet: set = set()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, str] = {}
        self.details: dict[str, str] = {}

    def printErrorList(self, flavour, errors):
        super().printErrorList(flavour, [
            (test, err) for test, err in errors
            if self.key(test) not in self.quiet])

    @staticmethod
    def key(test: unittest.TestCase) -> str:
        return '%s.%s' % (type(test).__name__, test._testMethodName)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes[self.key(test)] = 'passed'

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes[self.key(test)] = 'failed'
        self.details[self.key(test)] = self.failures[-1][1]

    def addError(self, test, err):
        super().addError(test, err)
        self.outcomes[self.key(test)] = 'failed'
        self.details[self.key(test)] = self.errors[-1][1]

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes[self.key(test)] = 'skipped'

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.outcomes[self.key(test)] = 'passed'

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.outcomes[self.key(test)] = 'failed'


def select(suite: unittest.TestSuite, pattern: str) -> unittest.TestSuite:
    picked = unittest.TestSuite()
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            picked.addTests(select(test, pattern))
        elif pattern in Result.key(test):
            picked.addTest(test)
    return picked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cache', required=True,
                        help='directory for the cinder sdist')
    parser.add_argument('--workdir', required=True,
                        help='directory for the rewritten test module')
    parser.add_argument('--differences', required=True,
                        help='INI file of the intended differences')
    parser.add_argument('-k', dest='pattern', default='',
                        help='run only tests whose Class.test_method '
                             'contains this')
    parser.add_argument('-v', dest='verbosity', action='store_const',
                        const=2, default=1)
    args = parser.parse_args()

    version = importlib.metadata.version('cinder')
    listed = differences(args.differences)
    os.makedirs(args.workdir, exist_ok=True)
    with open(os.path.join(args.workdir, MODULE + '.py'), 'w') as f:
        f.write(rewritten_module(sdist(version, args.cache), version))
    sys.path.insert(0, args.workdir)

    # Imported as in upstream's own runs, package first: cinder.tests.unit
    # sets the concurrency mode and imports cinder in an order without
    # circular imports (cinder.image.glance first is one).
    importlib.import_module(PACKAGE)
    suite = unittest.defaultTestLoader.loadTestsFromName(MODULE)
    if args.pattern:
        suite = select(suite, args.pattern)
    Result.quiet = set(listed)
    runner = unittest.TextTestRunner(resultclass=Result, stream=sys.stdout,
                                     verbosity=args.verbosity)
    result = runner.run(suite)
    outcomes = result.outcomes

    unknown = sorted(set(listed) - set(outcomes))
    if unknown and not args.pattern:
        print('Listed but not an upstream test: %s' % ', '.join(unknown))
    unexpected = sorted(name for name, outcome in outcomes.items()
                        if outcome == 'failed' and name not in listed)
    stale = sorted(name for name, outcome in outcomes.items()
                   if outcome == 'passed' and name in listed)
    as_listed = sorted(name for name, outcome in outcomes.items()
                       if outcome == 'failed' and name in listed)
    for name in unexpected:
        print('UNEXPECTED FAILURE %s\n%s' % (name, result.details[name]))
    for name in stale:
        print('LISTED BUT PASSED %s: remove it from %s' %
              (name, args.differences))
    for name in as_listed:
        print('intended difference %s: %s (shown by %s)' %
              (name, ' '.join(listed[name]['reason'].split()),
               listed[name]['shown_by']))
    count = {state: sum(1 for o in outcomes.values() if o == state)
             for state in ('passed', 'skipped')}
    ok = not unexpected and not stale and not (unknown and not args.pattern)
    print('upstream-rbd: cinder %s test_rbd.py against %s: %d run, %d passed, '
          '%d skipped, %d failed as listed intended differences, %d '
          'unexpected failures, %d listed but passed: %s' %
          (version, OUR_CLASS, len(outcomes), count['passed'],
           count['skipped'], len(as_listed), len(unexpected), len(stale),
           'OK' if ok else 'FAILED'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
