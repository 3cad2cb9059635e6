"""``Counters.update_batched``: callers of one process that update the
same object at once are written together.  The Counters here is a fake
(its ``update`` records calls and can be made to block or fail): what is
tested is who writes what, not RADOS (tests/functional/test_counters.py
counts against a real cluster)."""

import threading
import unittest

from cinder_rbd_bootcache.bootcache import counters


class FakeCounters:
    def __init__(self, key='obj'):
        self.key = key
        self.writes = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = None
        self.entered = threading.Event()

    def update(self, add, maximum):
        self.entered.set()
        self.gate.wait(5)
        if self.fail:
            raise self.fail
        self.writes.append((dict(add), dict(maximum)))

    update_batched = counters.Counters.update_batched


class UpdateBatchedTest(unittest.TestCase):

    def test_callers_during_a_write_are_written_together(self):
        fake = FakeCounters()
        fake.gate.clear()
        first = threading.Thread(target=fake.update_batched,
                                 args=({'hits': 1}, {'last': 5}))
        first.start()
        self.assertTrue(fake.entered.wait(5))
        others = [threading.Thread(target=fake.update_batched,
                                   args=({'hits': 1, 'x': 2}, {'last': n}))
                  for n in range(4)]
        for t in others:
            t.start()
        fake.gate.set()
        for t in [first] + others:
            t.join(5)
        self.assertEqual(2, len(fake.writes))
        self.assertEqual(({'hits': 1}, {'last': 5}), fake.writes[0])
        self.assertEqual(({'hits': 4, 'x': 8}, {'last': 3}), fake.writes[1])

    def test_a_failed_write_is_raised_by_each_of_its_callers(self):
        fake = FakeCounters()
        fake.fail = counters.CounterConflict('lost')
        self.assertRaises(counters.CounterConflict, fake.update_batched,
                          {'hits': 1}, {})
        # The object has no writer left over: the next caller writes.
        fake.fail = None
        fake.update_batched({'hits': 1}, {})
        self.assertEqual([({'hits': 1}, {})], fake.writes)

    def test_objects_are_batched_apart(self):
        one, two = FakeCounters('one'), FakeCounters('two')
        one.update_batched({'a': 1}, {})
        two.update_batched({'b': 1}, {})
        self.assertEqual([({'a': 1}, {})], one.writes)
        self.assertEqual([({'b': 1}, {})], two.writes)
