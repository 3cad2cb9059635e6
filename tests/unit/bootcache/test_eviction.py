"""The eviction policy and the cache's names, without Ceph."""

import unittest

import ddt

from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.bootcache import eviction

NOW = 100000.0
HOUR = 3600


def candidates(*rows):
    """(image id, bytes, hours since last use) -> Candidates."""
    return [eviction.Candidate(i, size, NOW - hours * HOUR)
            for i, size, hours in rows]


@ddt.ddt
class EvictTest(unittest.TestCase):

    @ddt.data(
        # (limits, entries (id, bytes, idle hours), cannot go, keep,
        #  evicted ids in order)
        (eviction.Limits(), [('a', 10, 99)], (), (), []),
        (eviction.Limits(max_entries=2),
         [('a', 1, 1), ('b', 1, 3), ('c', 1, 2)], (), (), ['b']),
        (eviction.Limits(max_entries=1),
         [('a', 1, 1), ('b', 1, 3), ('c', 1, 2)], (), (), ['b', 'c']),
        (eviction.Limits(max_bytes=25),
         [('a', 10, 1), ('b', 10, 3), ('c', 10, 2)], (), (), ['b']),
        (eviction.Limits(max_bytes=5),
         [('a', 10, 1), ('b', 10, 3)], (), (), ['b', 'a']),
        (eviction.Limits(max_idle_seconds=2 * HOUR),
         [('a', 1, 1), ('b', 1, 3), ('c', 1, 2)], (), (), ['b', 'c']),
        # An entry that cannot go keeps counting: the next one goes.
        (eviction.Limits(max_entries=2),
         [('a', 1, 1), ('b', 1, 3), ('c', 1, 2)], ('b',), (), ['c']),
        # The entry just populated for a waiting volume never goes now.
        (eviction.Limits(max_entries=1),
         [('a', 1, 5), ('b', 1, 3)], (), ('a',), ['b']),
        (eviction.Limits(max_entries=1, max_idle_seconds=HOUR),
         [('a', 1, 5)], (), ('a',), []),
    )
    @ddt.unpack
    def test_least_recently_used_first(self, limits, rows, stuck, keep,
                                       expected):
        tried = []

        def remove(candidate, reason):
            tried.append(candidate.image_id)
            self.assertTrue(reason)
            return candidate.image_id not in stuck

        removed = eviction.evict(candidates(*rows), limits, NOW, remove,
                                 keep=keep)
        self.assertEqual(expected, [c.image_id for c, _why in removed])
        self.assertLessEqual(set(expected), set(tried))

    @ddt.data(
        (eviction.Limits(max_entries=1), 'entries, more than 1'),
        (eviction.Limits(max_bytes=1), 'bytes, more than 1'),
        (eviction.Limits(max_idle_seconds=HOUR), 'unused for'),
    )
    @ddt.unpack
    def test_reason_says_which_limit(self, limits, words):
        removed = eviction.evict(candidates(('a', 5, 2), ('b', 5, 1)),
                                 limits, NOW, lambda c, why: True)
        self.assertIn(words, removed[0][1])


@ddt.ddt
class NamesTest(unittest.TestCase):

    @ddt.data(
        ('bootcache.1234', ('1234', catalog.READY)),
        ('bootcache.1234.building.abc', ('1234', catalog.BUILDING_STATE)),
        ('bootcache.counters', None),
        ('volume-1234', None),
        ('volume-1234.deleted', None),
    )
    @ddt.unpack
    def test_parse_name(self, name, expected):
        self.assertEqual(expected, catalog.parse_name(name))

    def test_entry_name_round_trips(self):
        image_id = '0c5c3a4e-6f1b-4a51-9d7e-2f1f5f3f0a11'
        self.assertEqual((image_id, catalog.READY),
                         catalog.parse_name(catalog.entry_name(image_id)))
