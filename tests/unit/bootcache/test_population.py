"""``Finishers``: where populations finish their entries in the
background, and how a caller waits for them (no Ceph: what runs is a
function the test controls; tests/functional/test_boot_cache.py finishes
real entries)."""

import threading
import unittest

from cinder_rbd_bootcache.bootcache import population


class FinishersTest(unittest.TestCase):

    def test_join_waits_for_every_running_finish(self):
        finishers = population.Finishers()
        gate = threading.Event()
        done = []

        def work(n):
            gate.wait(30)
            done.append(n)
        for n in range(3):
            finishers.submit(lambda n=n: work(n))
        self.assertEqual(3, finishers.running())
        gate.set()
        finishers.join(30)
        self.assertEqual([0, 1, 2], sorted(done))
        self.assertEqual(0, finishers.running())

    def test_each_owner_waits_only_for_its_own(self):
        mine, other = population.Finishers(), population.Finishers()
        gate = threading.Event()
        other.submit(lambda: gate.wait(30))
        mine.submit(lambda: None)
        mine.join(30)
        self.assertEqual(0, mine.running())
        self.assertEqual(1, other.running())
        gate.set()
        other.join(30)
