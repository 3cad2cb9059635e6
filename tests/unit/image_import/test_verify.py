"""The checks of what arrives (image_import.verify)."""

import hashlib
import unittest

from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.image_import import verify


class ChecksumVerifierTest(unittest.TestCase):

    DATA = b'x' * 1000

    def meta(self, **fields):
        return ImageFacts.from_glance(
            dict({'id': 'img', 'size': len(self.DATA)}, **fields))

    def test_multihash_match(self):
        verifier = verify.ChecksumVerifier(self.meta(
            os_hash_algo='sha512',
            os_hash_value=hashlib.sha512(self.DATA).hexdigest()))
        verifier.update(self.DATA)
        verifier.finish()

    def test_md5_checksum_is_the_fallback(self):
        verifier = verify.ChecksumVerifier(self.meta(
            checksum=hashlib.md5(b'other').hexdigest()))
        verifier.update(self.DATA)
        with self.assertRaises(errors.ImageHashMismatch) as caught:
            verifier.finish()
        self.assertIn('md5', str(caught.exception))

    def test_short_stream(self):
        verifier = verify.ChecksumVerifier(self.meta())
        verifier.update(self.DATA[:10])
        with self.assertRaises(errors.ImageStreamFailed) as caught:
            verifier.finish()
        self.assertIn('after 10 of 1000 bytes', str(caught.exception))

    def test_no_checksum_at_all_is_allowed(self):
        verifier = verify.ChecksumVerifier(self.meta())
        verifier.update(self.DATA)
        verifier.finish()

    def test_without_hashing_only_the_length_counts(self):
        # The client already compared the hash (see image_download).
        wrong = self.meta(os_hash_algo='sha512', os_hash_value='0' * 128)
        verifier = verify.ChecksumVerifier(wrong, hashing=False)
        verifier.update(self.DATA)
        verifier.finish()
        verifier = verify.ChecksumVerifier(wrong, hashing=False)
        verifier.update(self.DATA[:10])
        self.assertRaises(errors.ImageStreamFailed, verifier.finish)


class GuardedTest(unittest.TestCase):

    def test_source_failure_becomes_stream_failed(self):
        def source():
            yield b'a'
            raise IOError('reset')
        with self.assertRaises(errors.ImageStreamFailed) as caught:
            list(verify.guarded(source(), 'img'))
        self.assertIn('reset', str(caught.exception))


class ClientIntegrityErrorTest(unittest.TestCase):
    """Where the image service's client checks the hash itself
    (python-glanceclient's integrity_iter raises IOError(EPIPE, ...) at
    the end of a download), a mismatch is a corrupt image, not a network
    failure: the user is told to re-upload, not to retry."""

    def test_client_hash_error_is_data_corrupt(self):
        import errno

        def source():
            yield b'data'
            raise IOError(errno.EPIPE, 'Corrupt image download. Hash was '
                                       'ab expected cd')
        with self.assertRaises(errors.ImageDataCorrupt) as caught:
            list(verify.guarded(source(), 'img'))
        self.assertIn('Hash was ab expected cd', str(caught.exception))
        self.assertIn('re-upload', str(caught.exception))

    def test_client_hash_error_after_a_short_stream_is_the_short_stream(self):
        import errno

        def source():
            yield b'data'
            raise IOError(errno.EPIPE, 'Corrupt image download. Hash was '
                                       'ab expected cd')
        with self.assertRaises(errors.ImageStreamFailed) as caught:
            list(verify.guarded(source(), 'img', expected_size=10))
        self.assertIn('after 4 of 10 bytes', str(caught.exception))

    def test_other_broken_pipe_is_a_stream_failure(self):
        import errno

        def source():
            yield b'data'
            raise IOError(errno.EPIPE, 'Broken pipe')
        with self.assertRaises(errors.ImageStreamFailed):
            list(verify.guarded(source(), 'img'))
