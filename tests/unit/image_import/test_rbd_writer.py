"""Zero skipping and the in-flight bound of the RBD writer.

librbd is replaced by a recorder here: the error branch (a write that
completes with ENOSPC) and the exact number of writes in flight cannot be
observed on a real cluster.  The real writer runs against the sandbox in
the functional tests and the benchmark.
"""

import errno
import unittest

import ddt

from cinder_rbd_bootcache.image_import import rbd_writer

G = rbd_writer.ZERO_GRANULARITY


class FakeCompletion:
    def __init__(self, image, result):
        self.image = image
        self.result = result

    def wait_for_complete_and_cb(self):
        self.image.in_flight -= 1

    def get_return_value(self):
        return self.result


class FakeImage:
    def __init__(self, fail_at=None):
        self.writes = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_at = fail_at

    def aio_write(self, data, offset, oncomplete):
        self.writes.append((offset, len(data)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        result = -errno.ENOSPC if offset == self.fail_at else len(data)
        return FakeCompletion(self, result)


def block(*pieces):
    """A block made of G-sized pieces: 0 for zeros, 1 for data."""
    return b''.join(bytes(G) if p == 0 else b'\x01' * G for p in pieces)


@ddt.ddt
class NonzeroRunsTest(unittest.TestCase):

    @ddt.data(
        ((0, 0, 0, 0), []),
        ((1, 1, 1, 1), [(0, 4 * G)]),
        ((0, 1, 1, 0), [(G, 3 * G)]),
        ((1, 0, 0, 1), [(0, G), (3 * G, 4 * G)]),
        ((0, 0, 0, 1), [(3 * G, 4 * G)]),
    )
    @ddt.unpack
    def test_runs(self, pieces, runs):
        self.assertEqual(runs, list(rbd_writer.nonzero_runs(block(*pieces))))

    def test_short_last_piece(self):
        data = bytes(G) + b'\x01' * 10
        self.assertEqual([(G, G + 10)], list(rbd_writer.nonzero_runs(data)))


class SparseWriterTest(unittest.TestCase):

    def test_writes_only_data_and_counts(self):
        image = FakeImage()
        writer = rbd_writer.SparseWriter(image, depth=4)
        writer.write(0, block(1, 0, 0, 1))
        writer.write(4 * G, block(0, 0, 0, 0))
        writer.drain()
        self.assertEqual([(0, G), (3 * G, G)], image.writes)
        self.assertEqual((2 * G, 6 * G),
                         (writer.bytes_written, writer.bytes_skipped))

    def test_never_more_than_depth_in_flight(self):
        image = FakeImage()
        writer = rbd_writer.SparseWriter(image, depth=3)
        for i in range(20):
            writer.write(i * G, block(1))
        writer.drain()
        self.assertEqual(3, image.max_in_flight)
        self.assertEqual(0, image.in_flight)

    def test_failed_write_raises_with_errno(self):
        image = FakeImage(fail_at=2 * G)
        writer = rbd_writer.SparseWriter(image, depth=2)
        with self.assertRaises(rbd_writer.WriteError) as caught:
            for i in range(6):
                writer.write(i * G, block(1))
            writer.drain()
        self.assertEqual((errno.ENOSPC, 2 * G),
                         (caught.exception.errno, caught.exception.offset))
        writer.abandon()
        self.assertEqual(0, image.in_flight)
