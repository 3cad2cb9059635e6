"""``drain``'s rows, messages and exit status.  What it removes and lists
on a real pool is tests/functional/test_way_back.py's; here the drain
itself (``draining.drain`` / ``plan``) answers as told."""

import io
import types
import unittest
from unittest import mock

import ddt

from cinder_rbd_bootcache.bootcache import draining
from cinder_rbd_bootcache.cli import backend as backend_mod
from cinder_rbd_bootcache.cli import drain

VOLUME_ID = '2f0b9c1e-8d5a-4a7e-9b53-0c8f1d2e3a4b'
UPSTREAM = 'cinder.volume.drivers.rbd.RBDDriver'


def dependent(name, volume_id=None, in_trash=False):
    return draining.Dependent('volumes', name, volume_id, in_trash)


REMOVED = draining.Drained('img-a', 'ready', draining.REMOVED)
REMAINING = draining.Drained('img-b', 'ready', draining.REMAINS, [
    dependent('volume-' + VOLUME_ID, VOLUME_ID),
    dependent('glance-made-by-hand', in_trash=True)])


class RowsTest(unittest.TestCase):

    def test_one_row_per_dependent_and_one_for_an_entry_without(self):
        self.assertEqual([
            ('img-a', 'ready', 'removed', '-', '-'),
            ('img-b', 'ready', 'remains', 'volumes/volume-' + VOLUME_ID,
             VOLUME_ID),
            ('img-b', 'ready', 'remains',
             'volumes/glance-made-by-hand (in the RBD trash)', '-'),
        ], drain.rows([REMOVED, REMAINING]))
        self.assertTrue(all(len(row) == len(drain.COLUMNS)
                            for row in drain.rows([REMOVED, REMAINING])))


class FakeCatalog:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@ddt.ddt
class DrainCommandTest(unittest.TestCase):

    def _run(self, drained, *args, driver=UPSTREAM):
        stdout, stderr = io.StringIO(), io.StringIO()
        section = types.SimpleNamespace(bootcache_lock_lease=7)
        fake_backend = types.SimpleNamespace(
            name='ceph', volume_driver=driver, section=section,
            conf=types.SimpleNamespace(volume_name_template='volume-%s'),
            catalog=FakeCatalog)
        app = types.SimpleNamespace(stdout=stdout, stderr=stderr,
                                    backend=fake_backend, options=None)
        command = drain.Drain(app, None)
        parsed = command.get_parser('drain').parse_args(
            list(args) + ['-f', 'value'])
        with mock.patch.object(draining, 'drain',
                               return_value=drained) as run, \
                mock.patch.object(draining, 'plan',
                                  return_value=drained) as plan:
            code = command.run(parsed)
        return code, stdout.getvalue(), stderr.getvalue(), run, plan

    def test_nothing_remains(self):
        code, out, err, run, plan = self._run([REMOVED])
        self.assertEqual(0, code)
        self.assertEqual('img-a ready removed - -\n', out)
        self.assertEqual('No boot-cache entry remains.\n', err)
        # The lease of cinder.conf, a population's wait as evict's.
        self.assertEqual((7, 60), run.call_args[0][2:])
        plan.assert_not_called()

    def test_entries_remain(self):
        code, out, err, _run, _plan = self._run([REMOVED, REMAINING])
        self.assertEqual(drain.ENTRIES_REMAIN, code)
        self.assertNotIn(code, (0, 1, 2))  # success, error, usage error
        self.assertEqual(3, len(out.splitlines()))
        self.assertIn('1 boot-cache entries remain: volumes (or images) '
                      'are cloned from them', err)
        self.assertIn('rbd flatten POOL/NAME', err)

    @ddt.unpack
    @ddt.data(
        ([draining.Drained('i', 'ready', draining.WOULD_REMOVE)], 0,
         'No boot-cache entry would remain.'),
        ([draining.Drained('i', 'ready', draining.WOULD_REMAIN)],
         drain.ENTRIES_REMAIN, '1 boot-cache entries would remain'),
    )
    def test_dry_run_changes_nothing(self, drained, status, words):
        code, out, err, run, plan = self._run(drained, '--dry-run')
        self.assertEqual(status, code)
        run.assert_not_called()
        plan.assert_called_once()
        self.assertTrue(err.startswith('Dry run: nothing was changed.\n'))
        self.assertIn(words, err)

    def test_driver_still_ours_is_said(self):
        code, _out, err, _run, _plan = self._run(
            [REMOVED], driver=backend_mod.OUR_DRIVER)
        self.assertEqual(0, code)
        self.assertIn('[ceph] volume_driver is still %s: the cinder-volume '
                      'services that run it may populate entries again'
                      % backend_mod.OUR_DRIVER, err)
