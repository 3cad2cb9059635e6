"""The import's progress: counts, rate, the log's hook."""

import unittest

from cinder_rbd_bootcache.image_import import progress


class ProgressTest(unittest.TestCase):

    def test_counts_rate_and_hook(self):
        now = [100.0]
        seen = []
        tracker = progress.ImportProgress(
            'img', 'volumes/v', 400, interval=10,
            on_update=lambda p: seen.append(p.done), clock=lambda: now[0])
        now[0] = 102.0
        tracker.advance(100)
        now[0] = 104.0
        tracker.advance(100)
        self.assertEqual([100, 200], seen)
        self.assertEqual(50.0, tracker.percent)
        self.assertEqual(50.0, tracker.rate)

    def test_human(self):
        self.assertEqual('1.5 GiB', progress.human(1.5 * 1024 ** 3))
        self.assertEqual('12 B', progress.human(12))
