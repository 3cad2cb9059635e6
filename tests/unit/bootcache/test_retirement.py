"""Which entries the maintenance asks Glance about, and what it does
with the answers (no Ceph: the index and counters are in-memory stand-ins
of what the catalog reads; tests/functional/test_retirement.py runs the
catch-up on the sandbox)."""

import unittest
from unittest import mock

import ddt

from cinder_rbd_bootcache.bootcache import catalog as catalog_mod
from cinder_rbd_bootcache.bootcache import index
from cinder_rbd_bootcache.bootcache import naming
from cinder_rbd_bootcache.bootcache import retirement

NOW = 100000.0


class FakeCounters:
    def __init__(self, values):
        self.values = dict(values)

    def get(self, keys):
        return {key: self.values.get(key, 0) for key in keys}

    def update(self, maximum):
        for key, value in maximum.items():
            self.values[key] = max(self.values.get(key, 0), value)


def fake_catalog(created, confirmed=None):
    """Ready entries created at ``created[image_id]``, confirmed (s) at
    ``confirmed[image_id]``."""
    found = mock.Mock(spec=catalog_mod.Catalog)
    found.indexed.return_value = index.Contents(ready={
        image_id: index.ReadyRecord(image_id=image_id, created=when)
        for image_id, when in created.items()})
    found.counters = FakeCounters({
        naming.confirmed_key(image_id): int(when * 1000)
        for image_id, when in (confirmed or {}).items()})
    return found


@ddt.ddt
class DueTest(unittest.TestCase):

    @ddt.data(
        # interval, per_run, created, confirmed, due
        (0, 5, {'a': 0}, {}, []),
        (60, 0, {'a': 0}, {}, []),
        (60, 5, {'a': NOW - 30}, {}, []),
        (60, 5, {'a': NOW - 60}, {}, ['a']),
        (60, 5, {'a': 0}, {'a': NOW - 10}, []),
        (60, 5, {'a': 0, 'b': 10, 'c': 5}, {}, ['a', 'c', 'b']),
        (60, 2, {'a': 0, 'b': 10, 'c': 5}, {}, ['a', 'c']),
        (60, 2, {'a': 0, 'b': 10, 'c': 5}, {'a': NOW - 100}, ['c', 'b']),
    )
    @ddt.unpack
    def test_least_recently_confirmed_first_at_most_per_run(
            self, interval, per_run, created, confirmed, expected):
        checks = retirement.GlanceChecks(interval=interval, per_run=per_run)
        self.assertEqual(expected, retirement.due(
            fake_catalog(created, confirmed), checks, NOW))


class AskGlanceTest(unittest.TestCase):

    def test_stops_at_the_first_image_glance_cannot_answer_for(self):
        answers = {'a': None, 'b': RuntimeError('503'), 'c': 'deleted'}

        def ask(image_id):
            if isinstance(answers[image_id], Exception):
                raise answers[image_id]
            return answers[image_id]
        with mock.patch.object(retirement.LOG, 'warning') as warning:
            self.assertEqual({'a': None},
                             retirement.ask_glance(['a', 'b', 'c'], ask))
        warning.assert_called_once()


class CatchUpTest(unittest.TestCase):

    def test_retires_what_glance_no_longer_serves_confirms_the_rest(self):
        found = fake_catalog({'a': 0, 'b': 0, 'c': 0})
        found.entry.side_effect = lambda image_id: mock.Mock(
            image_id=image_id, name=naming.entry_name(image_id))
        found.remove.side_effect = [catalog_mod.REMOVED,
                                    catalog_mod.PopulationUnderWay('b')]
        retired = retirement.catch_up(
            found, {'a': 'deleted', 'b': 'deactivated', 'c': None}, NOW)
        self.assertEqual(['a'], retired)
        self.assertEqual([mock.call(mock.ANY, 'deleted', wait=0),
                          mock.call(mock.ANY, 'deactivated', wait=0)],
                         found.remove.call_args_list)
        self.assertEqual({naming.confirmed_key('c'): int(NOW * 1000)},
                         found.counters.values)

    def test_an_image_without_an_entry_retires_nothing(self):
        found = fake_catalog({})
        found.entry.return_value = None
        self.assertEqual([], retirement.catch_up(found, {'a': 'deleted'},
                                                 NOW))
        found.remove.assert_not_called()
