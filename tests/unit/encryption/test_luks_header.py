"""luks_header: cryptsetup's names for Cinder's cipher, the header's
payload offset."""

import unittest

import ddt

from cinder_rbd_bootcache.encryption import luks_header


@ddt.ddt
class CryptsetupNamesTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        # (decode_cipher's alg, mode, ivgen) -> (--cipher, --key-size)
        (('aes-256', 'xts', 'plain64'), ('aes-xts-plain64', 512)),
        (('aes-128', 'xts', 'plain64'), ('aes-xts-plain64', 256)),
        (('aes-256', 'cbc', 'essiv:sha256'), ('aes-cbc-essiv:sha256', 256)),
        (('serpent-256', 'xts', 'plain64'), ('serpent-xts-plain64', 512)),
    )
    def test_cipher_and_key_size(self, spec, expected):
        self.assertEqual(expected, luks_header.cryptsetup_cipher(*spec))

    def test_an_algorithm_without_a_size_is_refused(self):
        self.assertRaises(ValueError, luks_header.cryptsetup_cipher,
                          'aes', 'xts', 'plain64')

    def test_no_header_no_payload(self):
        self.assertRaises(ValueError, luks_header.payload_offset,
                          b'\0' * 512)
