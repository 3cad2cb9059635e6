"""Cutting streams and files into blocks (image_import.blocks)."""

import hashlib
import unittest

import ddt

from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.image_import import blocks
from cinder_rbd_bootcache.image_import import verify


#: (chunks of a stream, the 4-byte blocks they make)
RECUT_CASES = [
    ([b'abcd', b'efgh'], [b'abcd', b'efgh']),
    ([b'ab', b'cdefg', b'h'], [b'abcd', b'efgh']),
    ([b'abcdefghij'], [b'abcd', b'efgh', b'ij']),
    ([b'a', b'', b'b'], [b'ab']),
    ([], []),
]


@ddt.ddt
class AlignedBlocksTest(unittest.TestCase):

    @ddt.data(*RECUT_CASES)
    @ddt.unpack
    def test_recut(self, chunks, expected):
        self.assertEqual(expected,
                         list(blocks.aligned_blocks(chunks, 4)))


@ddt.ddt
class ReusedBlocksTest(unittest.TestCase):

    @ddt.data(*RECUT_CASES)
    @ddt.unpack
    def test_recut(self, chunks, expected):
        # Copied as they arrive: each block is only valid until the ring
        # comes round to its buffer again.
        self.assertEqual(expected, [bytes(b) for b in
                                    blocks.reused_blocks(chunks, 4)])

    def test_a_block_is_reused_only_after_the_ring_comes_round(self):
        chunks = [bytes([n]) * 3 for n in range(8)]
        seen = []
        for block in blocks.reused_blocks(chunks, 4, buffers=3):
            seen.append(block)
            # The two blocks before this one still hold what they held.
            expected = b''.join(chunks)
            for back, old in enumerate(reversed(seen[-3:])):
                index = len(seen) - 1 - back
                self.assertEqual(expected[index * 4:index * 4 + 4],
                                 bytes(old))

    def test_hashed_while_gathered_as_the_verifier_does(self):
        data = bytes(range(256)) * 999
        facts = ImageFacts.from_glance({
            'id': 'img', 'size': len(data), 'os_hash_algo': 'sha512',
            'os_hash_value': hashlib.sha512(data).hexdigest()})
        verifier = verify.ChecksumVerifier(facts)
        chunks = [data[i:i + 1000] for i in range(0, len(data), 1000)]
        for block in blocks.reused_blocks(chunks, 4096):
            verifier.update(block)
        verifier.finish()

    def test_file_blocks_read_the_file_exactly(self):
        import os
        import tempfile
        data = os.urandom(blocks.FILE_CHUNK * 2 + 12345)
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            self.assertEqual(data, b''.join(
                bytes(b) for b in blocks.file_blocks(f.name)))
