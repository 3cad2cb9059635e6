"""The constraints tox installs with: one file per Cinder release, each
used by the envs of its release, none naming Cinder or this project."""

from __future__ import annotations

import configparser
import pathlib
import re
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / 'constraints'
SERIES = ('2025.1', '2025.2', '2026.1', '2026.2')
#: What the e2e file raises above 2026.2's, and to what (see its header).
E2E_RAISED = {'keystoneauth1': '5.16.0', 'oslo.versionedobjects': '3.12.0'}


def names(path: pathlib.Path) -> set[str]:
    return {re.sub(r'[-_.]+', '-', line.split('===')[0]).lower()
            for line in path.read_text().splitlines()
            if '===' in line and not line.startswith('#')}


class ConstraintsTest(unittest.TestCase):

    def test_every_series_has_its_file_naming_neither_cinder_nor_us(self):
        for series in SERIES:
            path = CONSTRAINTS / ('upper-constraints-%s.txt' % series)
            found = names(path)
            self.assertNotIn('cinder', found, series)
            self.assertNotIn('cinder-rbd-bootcache', found, series)
            # What the unit and upstream-rbd envs need, held by the file.
            for name in ('pytest', 'ddt', 'fixtures', 'oslotest',
                         'testtools'):
                self.assertIn(name, found, series)

    def test_e2e_file_is_2026_2_with_the_raised_pins_only(self):
        base = (CONSTRAINTS / 'upper-constraints-2026.2.txt').read_text()
        e2e = (CONSTRAINTS / 'upper-constraints-2026.2-e2e.txt').read_text()
        body = [line for line in e2e.splitlines()
                if not line.startswith('# ') or line in base.splitlines()]
        raised = {}
        expected = []
        for line in base.splitlines():
            name = line.split('===')[0]
            if name in E2E_RAISED:
                raised[name] = line
                line = '%s===%s' % (name, E2E_RAISED[name])
            expected.append(line)
        self.assertEqual(sorted(E2E_RAISED), sorted(raised))
        self.assertEqual(expected, body)

    def test_tox_points_each_release_at_its_file(self):
        tox = configparser.ConfigParser(interpolation=None)
        tox.read(ROOT / 'tox.ini')
        setenv = tox['testenv']['setenv']
        for factor, series in (('cinder26', '2025.1'), ('cinder27', '2025.2'),
                               ('cinder28', '2026.1')):
            self.assertIn('%s: PIP_CONSTRAINT = {toxinidir}/constraints/'
                          'upper-constraints-%s.txt' % (factor, series),
                          setenv)
        self.assertIn('!cinder26-!cinder27-!cinder28: PIP_CONSTRAINT = '
                      '{toxinidir}/constraints/upper-constraints-2026.2.txt',
                      setenv)
