"""ImageFacts: Glance's image_meta read once; one rule for the hash."""

import dataclasses
import unittest

import ddt

from cinder_rbd_bootcache.bootcache import integrity
from cinder_rbd_bootcache.glance.facts import ImageFacts

GLANCE = {
    'id': 'img', 'disk_format': 'qcow2', 'container_format': 'bare',
    'size': 100, 'virtual_size': 4096, 'owner': 'p1',
    'os_hash_algo': 'sha512', 'os_hash_value': 'ab' * 64,
    'checksum': 'cd' * 16, 'properties': {'hw_disk_bus': 'scsi'},
    'status': 'active',
}


@ddt.ddt
class ExpectedHashTest(unittest.TestCase):

    @ddt.data(
        # (fields of image_meta, expected hash)
        ({}, ('sha512', 'ab' * 64)),
        ({'os_hash_algo': None, 'os_hash_value': None}, ('md5', 'cd' * 16)),
        # Half a multihash is no multihash.
        ({'os_hash_algo': None}, ('md5', 'cd' * 16)),
        ({'os_hash_value': '', 'checksum': None}, None),
        ({'os_hash_algo': None, 'os_hash_value': None, 'checksum': None},
         None),
    )
    @ddt.unpack
    def test_multihash_else_md5(self, changes, expected):
        facts = ImageFacts.from_glance(dict(GLANCE, **changes))
        self.assertEqual(expected, facts.expected_hash)
        self.assertEqual(expected[1] if expected else '', facts.fingerprint)


class RoundTripTest(unittest.TestCase):

    def test_entry_metadata_reads_back(self):
        facts = ImageFacts.from_glance(GLANCE)
        back = ImageFacts.from_entry_metadata(facts.entry_metadata())
        for field in ('id', 'disk_format', 'size', 'virtual_size',
                      'hash_algo', 'hash_value', 'md5', 'expected_hash',
                      'fingerprint'):
            self.assertEqual(getattr(facts, field), getattr(back, field),
                             field)

    def test_entry_metadata_is_text(self):
        fields = ImageFacts.from_glance({'id': 'x'}).entry_metadata()
        self.assertTrue(all(isinstance(v, str) for v in fields.values()))
        self.assertEqual('', fields['size'])

    def test_frozen(self):
        facts = ImageFacts.from_glance(GLANCE)
        with self.assertRaises(dataclasses.FrozenInstanceError):
            facts.size = 1
        with self.assertRaises(TypeError):
            facts.properties['hw_disk_bus'] = 'virtio'

    def test_facts_pass_through(self):
        facts = ImageFacts.from_glance(GLANCE)
        self.assertIs(facts, ImageFacts.from_glance(facts))


class IntegrityExpectedTest(unittest.TestCase):
    """What ``verify`` compares an entry with comes from the same rule."""

    def test_raw_entry_uses_glance_hash(self):
        metadata = ImageFacts.from_glance(
            dict(GLANCE, disk_format='raw')).entry_metadata()
        self.assertEqual(('sha512', 'ab' * 64, 100),
                         integrity.expected(metadata))

    def test_converted_entry_waits_for_its_digest(self):
        metadata = ImageFacts.from_glance(GLANCE).entry_metadata()
        self.assertIsNone(integrity.expected(metadata))
        metadata['content_sha256'] = 'ef' * 32
        self.assertEqual(('sha256', 'ef' * 32, None),
                         integrity.expected(metadata))
