"""The user message of every error; the progress log's counts."""

import inspect
import threading
import time
import unittest

import ddt
from cinder import exception
from cinder.message import message_field

from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache import progress

D = message_field.Detail


#: What ``cinder message-list`` says for each error a create from an image
#: can end in on our paths: (error, the Detail that is true for it, the
#: words the user reads).  Every class of ``errors`` has a row
#: (``test_every_error_class_has_a_row``); so do the Cinder exceptions our
#: paths raise or let through.  A hash that does not match is not a failed
#: signature check (the image need not be signed), and no error here is
#: about a volume type's format, which is all IMAGE_FORMAT_UNACCEPTABLE
#: says.
FAILED = 'Driver failed to create the volume.'
SPACE = 'Image used for creating volume exceeds available space.'
NOT_READY = 'Driver is not initialized at present.'
USER_MESSAGES = [
    (errors.ImageFormatMismatch(image_id='i', declared='raw',
                                detected='qcow2'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImageUnsafe(image_id='i', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImageLargerThanVolume(image_id='i', virtual_size=2,
                                  volume_size=1),
     'NOT_ENOUGH_SPACE_FOR_IMAGE', SPACE),
    (errors.ImageHashMismatch(image_id='i', algo='a', actual='x',
                              expected='y'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImageDataCorrupt(image_id='i', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImageStreamFailed(image_href='i', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.CephPoolFull(pool='p', image_id='i', flags='full'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.VolumePoolFull(pool='p', volume_id='v', flags='full'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImportStalled(image_id='i', pool='p', timeout=1),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImportWriteFailed(image_id='i', pool='p', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.LuksHeaderFailed(volume='v', cipher='c', key_bits=256,
                             reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (exception.ImageTooBig(image_id='i', reason='r'),
     'NOT_ENOUGH_SPACE_FOR_IMAGE', SPACE),
    (exception.ImageSignatureVerificationException(reason='r'),
     'SIGNATURE_VERIFICATION_FAILED', 'Image signature verification '
     'failed.'),
    (exception.ImageConversionNotAllowed(image_id='i', reason='r'),
     'IMAGE_FORMAT_UNACCEPTABLE', 'The image disk format must be the same '
     'as the volume format for the volume type you are requesting.'),
    (exception.ImageUnacceptable(image_id='i', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (exception.ImageDownloadFailed(image_href='i', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (exception.ImageNotFound(image_id='i'), 'DRIVER_FAILED_CREATE', FAILED),
    (exception.ImageNotAuthorized(image_id='i'),
     'DRIVER_FAILED_CREATE', FAILED),
    (exception.KeyManagerError(reason='r'), 'DRIVER_FAILED_CREATE', FAILED),
    (exception.VolumeBackendAPIException(data='d'),
     'DRIVER_FAILED_CREATE', FAILED),
] + [
    # Raised when the driver starts (it stays uninitialised); Cinder
    # refuses the creates of an uninitialised driver with this detail.
    (cls(option='rbd_pool', value='volumez', problem='p', fix='f'),
     'DRIVER_NOT_INITIALIZED', NOT_READY)
    for cls in (errors.CephMisconfigured, errors.CephFileUnusable,
                errors.CephMonitorsUnreachable, errors.CephAuthRefused,
                errors.CephPoolMissing, errors.CephCapsTooNarrow)
] + [
    # Anything else: librados/librbd errors, a bug.
    (OSError(5, 'EIO'), 'DRIVER_FAILED_CREATE', FAILED),
    (RuntimeError('r'), 'DRIVER_FAILED_CREATE', FAILED),
]


def _row_name(row):
    return type(row[0]).__name__


@ddt.ddt
class UserMessageDetailTest(unittest.TestCase):

    @ddt.idata((_row_name(row), row) for row in USER_MESSAGES)
    @ddt.unpack
    def test_detail_is_true_for_the_error(self, _name, row):
        exc, detail_name, words = row
        detail = errors.user_message_detail(exc)
        self.assertIn(detail, D.ALL)
        self.assertEqual(getattr(D, detail_name), detail)
        # What message-list shows; the same in cinder 26 to 29.
        self.assertEqual(words, message_field.translate_detail(detail[0]))

    def test_every_error_class_has_a_row(self):
        classes = {cls for _name, cls in inspect.getmembers(
            errors, inspect.isclass)
            if issubclass(cls, BaseException) and
            cls.__module__ == errors.__name__}
        self.assertTrue(classes)
        with_rows = {type(row[0]) for row in USER_MESSAGES}
        self.assertEqual(set(), classes - with_rows,
                         'errors without a row in USER_MESSAGES')
        # ...and in the module's own table, not just its fallback.
        self.assertEqual(set(), classes - set(errors.USER_MESSAGE_DETAILS))

    def test_no_row_says_something_false(self):
        # The two details that were shown although false: only the one
        # Cinder exception each describes may map to them.
        for exc, detail_name, _words in USER_MESSAGES:
            if detail_name == 'SIGNATURE_VERIFICATION_FAILED':
                self.assertIsInstance(
                    exc, exception.ImageSignatureVerificationException)
            if detail_name == 'IMAGE_FORMAT_UNACCEPTABLE':
                self.assertIsInstance(exc,
                                      exception.ImageConversionNotAllowed)


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
