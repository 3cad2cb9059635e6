"""``Finishers``: where populations finish their entries in the
background, and how a caller waits for them (no Ceph: what runs is a
function the test controls; tests/functional/test_boot_cache.py finishes
real entries)."""

import threading
import unittest

from cinder_rbd_bootcache.bootcache import population
from cinder_rbd_bootcache.glance.facts import ImageFacts


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


class EntryMetadataTest(unittest.TestCase):

    def test_facts_glance_does_not_give_are_left_out(self):
        # No md5 and no virtual size: no empty value is ever written
        # (Ceph's Python binding misreads the keys after an empty one).
        facts = ImageFacts.from_glance({
            'id': 'img', 'disk_format': 'raw', 'size': 4096,
            'os_hash_algo': 'sha512', 'os_hash_value': 'ab' * 64})
        fields = population.entry_metadata(facts, 1.5, 4096)
        self.assertNotIn('', fields.values())
        self.assertNotIn('checksum', fields)
        self.assertEqual(('img', 'raw', '4096', '4096'), (
            fields['image_id'], fields['disk_format'], fields['size'],
            fields['bytes_used']))
        self.assertEqual(facts, ImageFacts.from_entry_metadata(fields))
