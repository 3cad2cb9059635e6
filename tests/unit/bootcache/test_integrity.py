"""Entry hashes over sparse images.  librbd is replaced by an in-memory
image with the same three calls (size, read, diff_iterate): hole handling
and extents that straddle the hashed length are hard to arrange exactly
on a real cluster; the functional CLI tests run the real thing."""

import hashlib
import unittest

import ddt

from cinder_rbd_bootcache.bootcache import integrity

MiB = 1 << 20


class MemoryImage:
    def __init__(self, size, extents):
        self._data = bytearray(size)
        self._extents = []
        for offset, payload in extents:
            self._data[offset:offset + len(payload)] = payload
            self._extents.append((offset, len(payload)))

    def size(self):
        return len(self._data)

    def read(self, offset, length):
        return bytes(self._data[offset:offset + length])

    def diff_iterate(self, offset, length, from_snapshot, callback):
        for start, extent_length in self._extents:
            end = min(start + extent_length, offset + length)
            start = max(start, offset)
            if start < end:
                callback(start, end - start, True)


@ddt.ddt
class DigestTest(unittest.TestCase):

    @ddt.data(
        [],                                        # all holes
        [(0, b'a' * MiB)],
        [(3 * MiB, b'b' * 100), (5 * MiB, b'c' * (2 * MiB))],
        [(7 * MiB, b'd' * (2 * MiB))],             # straddles the length
    )
    def test_matches_hashing_every_byte(self, extents):
        image = MemoryImage(10 * MiB, extents)
        for length in (8 * MiB, 10 * MiB):
            expected = hashlib.sha512(image.read(0, length)).hexdigest()
            self.assertEqual(expected,
                             integrity.digest(image, length, 'sha512'))

    def test_check_raw_entry(self):
        payload = b'x' * MiB
        image = MemoryImage(4 * MiB, [(0, payload)])
        meta = {'size': str(MiB), 'os_hash_algo': 'sha512',
                'os_hash_value': hashlib.sha512(payload).hexdigest()}
        self.assertEqual((True, 'sha512 matches'),
                         integrity.check(image, meta))
        # Data after the image's end is a mismatch too.
        tail = MemoryImage(4 * MiB, [(0, payload), (3 * MiB, b'y' * 10)])
        ok, detail = integrity.check(tail, meta)
        self.assertFalse(ok)
        self.assertIn('10 non-zero bytes', detail)

    def test_check_converted_entry_uses_its_recorded_digest(self):
        image = MemoryImage(4 * MiB, [(MiB, b'q' * 100)])
        meta = {'disk_format': 'qcow2', 'os_hash_algo': 'sha512',
                'os_hash_value': 'of the qcow2 file, not of this',
                'content_sha256': integrity.digest(image, 4 * MiB,
                                                   'sha256')}
        self.assertTrue(integrity.check(image, meta)[0])
        meta['content_sha256'] = '0' * 64
        self.assertFalse(integrity.check(image, meta)[0])

    def test_nothing_recorded(self):
        self.assertEqual((False, 'no hash recorded for this entry'),
                         integrity.check(MemoryImage(MiB, []), {}))
