"""The pure parts of the import pipeline: blocks, hashes, qemu's rbd spec."""

import hashlib
import unittest

import ddt

from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline


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
    def test_recut(self, chunks, blocks):
        self.assertEqual(blocks,
                         list(import_pipeline.aligned_blocks(chunks, 4)))


@ddt.ddt
class ReusedBlocksTest(unittest.TestCase):

    @ddt.data(*RECUT_CASES)
    @ddt.unpack
    def test_recut(self, chunks, blocks):
        # Copied as they arrive: each block is only valid until the ring
        # comes round to its buffer again.
        self.assertEqual(blocks, [bytes(b) for b in
                                  import_pipeline.reused_blocks(chunks, 4)])

    def test_a_block_is_reused_only_after_the_ring_comes_round(self):
        chunks = [bytes([n]) * 3 for n in range(8)]
        seen = []
        for block in import_pipeline.reused_blocks(chunks, 4, buffers=3):
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
        verifier = import_pipeline.ChecksumVerifier(facts)
        chunks = [data[i:i + 1000] for i in range(0, len(data), 1000)]
        for block in import_pipeline.reused_blocks(chunks, 4096):
            verifier.update(block)
        verifier.finish()

    def test_file_blocks_read_the_file_exactly(self):
        import os
        import tempfile
        data = os.urandom(import_pipeline.FILE_CHUNK * 2 + 12345)
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            self.assertEqual(data, b''.join(
                bytes(b) for b in import_pipeline.file_blocks(f.name)))


class ChecksumVerifierTest(unittest.TestCase):

    DATA = b'x' * 1000

    def meta(self, **fields):
        return ImageFacts.from_glance(
            dict({'id': 'img', 'size': len(self.DATA)}, **fields))

    def test_multihash_match(self):
        verifier = import_pipeline.ChecksumVerifier(self.meta(
            os_hash_algo='sha512',
            os_hash_value=hashlib.sha512(self.DATA).hexdigest()))
        verifier.update(self.DATA)
        verifier.finish()

    def test_md5_checksum_is_the_fallback(self):
        verifier = import_pipeline.ChecksumVerifier(self.meta(
            checksum=hashlib.md5(b'other').hexdigest()))
        verifier.update(self.DATA)
        with self.assertRaises(errors.ImageHashMismatch) as caught:
            verifier.finish()
        self.assertIn('md5', str(caught.exception))

    def test_short_stream(self):
        verifier = import_pipeline.ChecksumVerifier(self.meta())
        verifier.update(self.DATA[:10])
        with self.assertRaises(errors.ImageStreamFailed) as caught:
            verifier.finish()
        self.assertIn('after 10 of 1000 bytes', str(caught.exception))

    def test_no_checksum_at_all_is_allowed(self):
        verifier = import_pipeline.ChecksumVerifier(self.meta())
        verifier.update(self.DATA)
        verifier.finish()

    def test_without_hashing_only_the_length_counts(self):
        # The client already compared the hash (see image_download).
        wrong = self.meta(os_hash_algo='sha512', os_hash_value='0' * 128)
        verifier = import_pipeline.ChecksumVerifier(wrong, hashing=False)
        verifier.update(self.DATA)
        verifier.finish()
        verifier = import_pipeline.ChecksumVerifier(wrong, hashing=False)
        verifier.update(self.DATA[:10])
        self.assertRaises(errors.ImageStreamFailed, verifier.finish)


class GuardedTest(unittest.TestCase):

    def test_source_failure_becomes_stream_failed(self):
        def source():
            yield b'a'
            raise IOError('reset')
        with self.assertRaises(errors.ImageStreamFailed) as caught:
            list(import_pipeline.guarded(source(), 'img'))
        self.assertIn('reset', str(caught.exception))


class ClientIntegrityErrorTest(unittest.TestCase):
    """python-glanceclient's own hash check at the end of a download
    (integrity_iter raises IOError(EPIPE, ...)) is a corrupt image, not a
    network failure: the user is told to re-upload, not to retry."""

    def test_client_hash_error_is_data_corrupt(self):
        import errno

        def source():
            yield b'data'
            raise IOError(errno.EPIPE, 'Corrupt image download. Hash was '
                                       'ab expected cd')
        with self.assertRaises(errors.ImageDataCorrupt) as caught:
            list(import_pipeline.guarded(source(), 'img'))
        self.assertIn('Hash was ab expected cd', str(caught.exception))
        self.assertIn('re-upload', str(caught.exception))

    def test_client_hash_error_after_a_short_stream_is_the_short_stream(self):
        import errno

        def source():
            yield b'data'
            raise IOError(errno.EPIPE, 'Corrupt image download. Hash was '
                                       'ab expected cd')
        with self.assertRaises(errors.ImageStreamFailed) as caught:
            list(import_pipeline.guarded(source(), 'img', expected_size=10))
        self.assertIn('after 4 of 10 bytes', str(caught.exception))

    def test_other_broken_pipe_is_a_stream_failure(self):
        import errno

        def source():
            yield b'data'
            raise IOError(errno.EPIPE, 'Broken pipe')
        with self.assertRaises(errors.ImageStreamFailed):
            list(import_pipeline.guarded(source(), 'img'))


class RbdSpecTest(unittest.TestCase):

    def test_colons_are_escaped(self):
        self.assertEqual(
            'rbd:vol\\:s/volume-1:conf=/etc/ceph/a\\:b.conf:id=cinder'
            ':rados_osd_op_timeout=30',
            import_pipeline.rbd_spec('vol:s', 'volume-1', 'cinder',
                                     '/etc/ceph/a:b.conf', 30))


class RunWithProgressTest(unittest.TestCase):
    """A stand-in command prints what ``qemu-img convert -p`` prints."""

    def tracker(self):
        from cinder_rbd_bootcache.image_import import progress
        return progress.ImportProgress('img', 't', 1000, interval=3600)

    def test_percentages_become_bytes(self):
        tracker = self.tracker()
        import_pipeline.run_with_progress(
            ['sh', '-c', r"printf '    (0.00/100%%)\r    (25.50/100%%)\r"
             r"    (100.00/100%%)\r'"], tracker)
        self.assertEqual(1000, tracker.done)

    def test_failure_keeps_stderr(self):
        from oslo_concurrency import processutils
        with self.assertRaises(processutils.ProcessExecutionError) as caught:
            import_pipeline.run_with_progress(
                ['sh', '-c', 'echo broken >&2; exit 3'], self.tracker())
        self.assertEqual(3, caught.exception.exit_code)
        self.assertIn('broken', caught.exception.stderr)
