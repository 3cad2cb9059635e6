"""The format rule: what a release does with a pool by the value of its
``format`` key.  ``read`` and ``stamp`` are replaced by a dict standing for
the key (and, for the stamp, its compare-and-set): what is tested is the
decision; tests/functional/test_format_version.py stamps and reads a real
pool through Cinder's flow."""

import unittest
from unittest import mock

import ddt

from cinder_rbd_bootcache.bootcache import format_version
from cinder_rbd_bootcache.cli import doctor


class FakeKey:
    """The ``format`` key of one pool; ``racer`` is what another host
    stamps just before our first stamp lands."""

    def __init__(self, raw=None, racer=None):
        self.raw = raw
        self.racer = racer
        self.reads = 0
        self.stamps = []

    def read(self, _ioctx):
        self.reads += 1
        return self.raw

    def stamp(self, _ioctx, expected, value):
        if self.racer is not None:
            self.raw, self.racer = self.racer, None
        if self.raw != expected:
            return False
        self.raw = str(value).encode()
        self.stamps.append(self.raw)
        return True

    def patched(self):
        return mock.patch.multiple(format_version, read=self.read,
                                   stamp=self.stamp)


@ddt.ddt
class CheckTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        # (this release's format, value found) -> usable, found,
        # value afterwards, stamps written
        # absent: format 1, as 0.3.0 to 0.6.0 leave a pool: stamped
        (1, None, True, 1, b'1', [b'1']),
        # equal: used as it is, nothing written
        (1, b'1', True, 1, b'1', []),
        # older (a release that knows format 3 meets format 2): upgraded
        (3, b'2', True, 2, b'3', [b'3']),
        (3, None, True, 1, b'3', [b'3']),
        # newer: bypassed, never written
        (1, b'2', False, 2, b'2', []),
        (2, b'17', False, 17, b'17', []),
        # garbage: bypassed, never written
        (1, b'', False, None, b'', []),
        (1, b'0', False, None, b'0', []),
        (1, b'-1', False, None, b'-1', []),
        (1, b'one', False, None, b'one', []),
        (1, b'1.5', False, None, b'1.5', []),
        (1, b'\xff', False, None, b'\xff', []),
    )
    def test_verdict_and_what_is_written(self, known, raw, usable, found,
                                         after, stamps):
        key = FakeKey(raw)
        with key.patched(), \
                mock.patch.object(format_version, 'FORMAT', known):
            verdict = format_version.check(None, 'volumes')
            self.assertEqual(usable, verdict.usable)
        self.assertEqual(found, format_version.Verdict('volumes', raw).found)
        self.assertEqual(after, key.raw)
        self.assertEqual(stamps, key.stamps)

    @ddt.data(None, b'1', b'2', b'junk')
    def test_without_stamping_nothing_is_written(self, raw):
        key = FakeKey(raw)
        with key.patched():
            verdict = format_version.check(None, 'volumes', may_stamp=False)
        self.assertEqual(raw, verdict.raw)
        self.assertEqual([], key.stamps)

    @ddt.unpack
    @ddt.data(
        # another host stamps first: what it stamped decides
        (b'1', True),
        (b'2', False),
    )
    def test_a_lost_stamping_race_reads_the_winner(self, winner, usable):
        key = FakeKey(None, racer=winner)
        with key.patched():
            verdict = format_version.check(None, 'volumes')
        self.assertEqual((winner, usable), (verdict.raw, verdict.usable))
        self.assertEqual([], key.stamps)

    @ddt.unpack
    @ddt.data(
        (b'2', 'pool vols is in format 2,'),
        (b'one', "pool vols is in an unreadable format value b'one',"),
    )
    def test_the_operator_is_told_what_to_do(self, raw, what):
        problem = format_version.Verdict('vols', raw).problem()
        self.assertIn(what, problem)
        self.assertIn('knows format %d' % format_version.FORMAT, problem)
        self.assertIn('Upgrade cinder-rbd-bootcache on this host', problem)

    @ddt.unpack
    @ddt.data(
        (None, '1 (not stamped yet)'),
        (b'1', '1'),
        (b'x', "unreadable (b'x')"),
    )
    def test_shown(self, raw, shown):
        self.assertEqual(shown, format_version.Verdict('v', raw).shown())


class GuardTest(unittest.TestCase):

    def setUp(self):
        self.key = FakeKey(b'2')
        patcher = self.key.patched()
        patcher.start()
        self.addCleanup(patcher.stop)
        self.guard = format_version.FormatGuard()

    def test_read_once_refreshed_on_request_and_warned_once(self):
        with mock.patch.object(format_version, 'LOG') as log:
            for _ in range(5):
                self.assertRaises(format_version.FormatNotKnown,
                                  self.guard.require, None, 'volumes')
            self.assertEqual(1, self.key.reads)
            self.guard.verdict(None, 'volumes', refresh=True)
            self.assertEqual(2, self.key.reads)
            self.assertEqual(1, log.warning.call_count)
            message, args = log.warning.call_args[0]
            self.assertIn('pool volumes is in format 2', message % args)
            # Another value: said again.
            self.key.raw = b'3'
            self.guard.verdict(None, 'volumes', refresh=True)
            self.assertEqual(2, log.warning.call_count)
            # Back to a known format (an operator's repair): used again.
            self.key.raw = b'1'
            self.assertTrue(self.guard.require(None, 'volumes',
                                               refresh=True).usable)
            self.assertEqual(1, log.info.call_count)
        self.assertEqual([], self.key.stamps)

    def test_pools_are_told_apart(self):
        self.assertFalse(self.guard.verdict(None, 'a').usable)
        self.key.raw = b'1'
        self.assertTrue(self.guard.verdict(None, 'b').usable)
        self.assertFalse(self.guard.known('a').usable)


class ReportingTest(unittest.TestCase):

    def test_stats_figures(self):
        self.assertEqual(
            {'format': 2, 'format_known': format_version.FORMAT,
             'bypassed': 1},
            format_version.figures(format_version.Verdict('v', b'2')))
        self.assertEqual(
            {'format': 0, 'format_known': format_version.FORMAT,
             'bypassed': 1},
            format_version.figures(format_version.Verdict('v', b'?')))
        self.assertEqual(
            {'format': 1, 'format_known': format_version.FORMAT,
             'bypassed': 0},
            format_version.figures(format_version.Verdict('v', None)))

    def test_doctor_row(self):
        check, result, detail = doctor.format_row(
            format_version.Verdict('v', b'9'))
        self.assertEqual(('boot-cache format', doctor.ERROR), (check, result))
        self.assertIn('format 9', detail)
        self.assertEqual(doctor.OK, doctor.format_row(
            format_version.Verdict('v', None))[1])
