"""The population lock's waiting loop, its wake-ups and cls_lock's
unlock input, without Ceph (tests/functional/test_lock.py takes and
releases real locks)."""

import threading
import unittest

from cinder_rbd_bootcache.bootcache import lock


class AcquireOrWaitTest(unittest.TestCase):
    """The waiting loop alone, with a fake clock (no Ceph needed)."""

    def run_loop(self, ready_at, free_at, timeout=10):
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

    def test_returns_what_ready_found(self):
        entry = object()
        self.assertIs(entry, lock.acquire_or_wait(
            acquire=lambda: False, ready=lambda: entry, timeout=10,
            interval=1, clock=lambda: 0.0, sleep=lambda s: None))

    def test_gives_up(self):
        with self.assertRaises(TimeoutError):
            self.run_loop(ready_at=99, free_at=99, timeout=5)

    def test_waiters_see_a_short_population_at_once(self):
        """Without a fixed interval, a waiter notices within 5 % (and at
        least FIRST_WAIT) of the time it waited, and never sleeps over
        MAX_WAIT."""
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
        published = threading.Event()
        looked = threading.Event()
        results = []

        def ready():
            looked.set()
            return published.is_set()

        def waiter():
            results.append(lock.acquire_or_wait(
                acquire=lambda: False, ready=ready, timeout=600,
                interval=60, key='key-a'))

        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        self.assertTrue(looked.wait(30))
        published.set()
        lock.WAKEUPS.wake('key-a')
        # Woken, the waiter looks again and returns; had it slept its
        # 60 s interval out it would still be waiting here.
        thread.join(30)
        self.assertFalse(thread.is_alive())
        self.assertEqual([True], results)

    def test_a_wake_between_look_and_sleep_is_not_lost(self):
        """The waiter marks the count before it looks: a wake that comes
        after its look but before its sleep ends that sleep at once."""
        wakeups = lock.Wakeups()
        mark = wakeups.mark('key-b')
        wakeups.wake('key-b')          # the holder, just after the look
        wakeups.wake('key-other')      # another image's holder
        self.assertTrue(wakeups.wait('key-b', mark, 60))

    def test_another_keys_wake_does_not_end_the_sleep(self):
        wakeups = lock.Wakeups()
        mark = wakeups.mark('key-c')
        wakeups.wake('key-d')
        self.assertFalse(wakeups.wait('key-c', mark, 0.01))

    def test_waiters_of_a_holder_in_this_process_look_once_a_second(self):
        """The holder wakes them; looking in Ceph every few tens of ms too
        would only take CPU from the population."""
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
        self.assertEqual(
            b'\x01\x01' + b'\x0b\x00\x00\x00' +
            b'\x02\x00\x00\x00ab' + b'\x01\x00\x00\x00c',
            lock.unlock_input('ab', 'c'))
