"""User-message details for import errors; the progress log's counts."""

import threading
import time
import unittest

import ddt
from cinder import exception
from cinder.message import message_field

from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache import progress

D = message_field.Detail


@ddt.ddt
class UserMessageDetailTest(unittest.TestCase):

    @ddt.data(
        (exception.ImageTooBig(image_id='i', reason='r'),
         D.NOT_ENOUGH_SPACE_FOR_IMAGE),
        (errors.ImageLargerThanVolume(image_id='i', virtual_size=2,
                                      volume_size=1),
         D.NOT_ENOUGH_SPACE_FOR_IMAGE),
        (errors.ImageHashMismatch(image_id='i', algo='a', actual='x',
                                  expected='y'),
         D.SIGNATURE_VERIFICATION_FAILED),
        (errors.ImageUnsafe(image_id='i', reason='r'),
         D.IMAGE_FORMAT_UNACCEPTABLE),
        (errors.ImageFormatMismatch(image_id='i', declared='raw',
                                    detected='qcow2'),
         D.IMAGE_FORMAT_UNACCEPTABLE),
        (errors.CephPoolFull(pool='p', image_id='i', flags='full'),
         D.DRIVER_FAILED_CREATE),
        (errors.ImageStreamFailed(image_href='i', reason='r'),
         D.DRIVER_FAILED_CREATE),
    )
    @ddt.unpack
    def test_detail(self, exc, detail):
        self.assertEqual(detail, errors.user_message_detail(exc))


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


class AcquireOrWaitTest(unittest.TestCase):
    """The waiting loop alone, with a fake clock (no Ceph needed)."""

    def run_loop(self, ready_at, free_at, timeout=10):
        from cinder_rbd_bootcache import lock
        now = [0.0]
        return lock.acquire_or_wait(
            acquire=lambda: now[0] >= free_at,
            ready=lambda: now[0] >= ready_at, timeout=timeout,
            interval=1, clock=lambda: now[0],
            sleep=lambda s: now.__setitem__(0, now[0] + s))

    def test_other_holder_finishes(self):
        self.assertTrue(self.run_loop(ready_at=3, free_at=99))

    def test_lock_becomes_ours(self):
        self.assertFalse(self.run_loop(ready_at=99, free_at=2))

    def test_gives_up(self):
        with self.assertRaises(TimeoutError):
            self.run_loop(ready_at=99, free_at=99, timeout=5)

    def test_waiters_see_a_short_population_at_once(self):
        """Without a fixed interval, a waiter notices within 5 % (and at
        least FIRST_WAIT) of the time it waited, and never sleeps over
        MAX_WAIT."""
        from cinder_rbd_bootcache import lock
        for ready_at in (0.3, 2.0, 7.5, 90.0):
            now = [0.0]
            sleeps = []

            def sleep(seconds, now=now, sleeps=sleeps):
                sleeps.append(seconds)
                now[0] += seconds

            self.assertTrue(lock.acquire_or_wait(
                acquire=lambda: False, ready=lambda: now[0] >= ready_at,
                timeout=600, clock=lambda: now[0], sleep=sleep))
            late = now[0] - ready_at
            self.assertLessEqual(
                late, max(lock.FIRST_WAIT, ready_at / 20) + 1e-9, ready_at)
            self.assertLessEqual(max(sleeps), lock.MAX_WAIT)

    def test_a_holder_in_this_process_wakes_its_waiters_at_once(self):
        """A waiter whose holder is in the same process looks again when
        the holder wakes it (publishes or releases), not after its
        interval: here 60 s, which would exceed the test's 30 s timeout
        had it slept it out.  Real threads, real clock."""
        import threading
        import time

        from cinder_rbd_bootcache import lock
        published = threading.Event()

        def holder():
            time.sleep(0.2)
            published.set()
            lock.WAKEUPS.wake('key-a')

        started = time.monotonic()
        threading.Thread(target=holder, daemon=True).start()
        self.assertTrue(lock.acquire_or_wait(
            acquire=lambda: False, ready=published.is_set, timeout=30,
            interval=60, key='key-a'))
        self.assertLess(time.monotonic() - started, 30)

    def test_a_wake_between_look_and_sleep_is_not_lost(self):
        """The waiter marks the count before it looks: a wake that comes
        after its look but before its sleep ends that sleep at once."""
        from cinder_rbd_bootcache import lock
        wakeups = lock.Wakeups()
        mark = wakeups.mark('key-b')
        wakeups.wake('key-b')          # the holder, just after the look
        wakeups.wake('key-other')      # another image's holder
        done = []
        waiter = threading.Thread(
            target=lambda: done.append(wakeups.wait('key-b', mark, 60)),
            daemon=True)
        waiter.start()
        waiter.join(30)
        self.assertEqual([None], done)

    def test_another_keys_wake_does_not_end_the_sleep(self):
        from cinder_rbd_bootcache import lock
        wakeups = lock.Wakeups()
        mark = wakeups.mark('key-c')
        wakeups.wake('key-d')
        started = time.monotonic()
        wakeups.wait('key-c', mark, 0.3)
        self.assertGreaterEqual(time.monotonic() - started, 0.29)

    def test_waiters_of_a_holder_in_this_process_look_once_a_second(self):
        """The holder wakes them; looking in Ceph every few tens of ms too
        would only take CPU from the population."""
        from cinder_rbd_bootcache import lock
        now = [0.0]
        sleeps = []

        def sleep(seconds):
            sleeps.append(seconds)
            now[0] += seconds

        lock.WAKEUPS.holding('key-e')
        try:
            self.assertTrue(lock.acquire_or_wait(
                acquire=lambda: False, ready=lambda: now[0] >= 5,
                timeout=60, clock=lambda: now[0], sleep=sleep,
                key='key-e'))
        finally:
            lock.WAKEUPS.let_go('key-e')
        self.assertEqual([lock.MAX_WAIT] * 5, sleeps)
        self.assertFalse(lock.WAKEUPS.held_here('key-e'))


class UnlockInputTest(unittest.TestCase):
    """cls_lock's ``unlock`` input, byte for byte as Ceph encodes
    ``cls_lock_unlock_op`` (ENCODE_START(1, 1), two strings).  That the
    OSD accepts it is tests/functional/test_lock.py's part."""

    def test_encoding(self):
        from cinder_rbd_bootcache import lock
        self.assertEqual(
            b'\x01\x01' + b'\x0b\x00\x00\x00' +
            b'\x02\x00\x00\x00ab' + b'\x01\x00\x00\x00c',
            lock.unlock_input('ab', 'c'))
