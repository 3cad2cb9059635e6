"""Checking that an import received the image Glance has.

``ChecksumVerifier`` hashes what arrives with the algorithm Glance used
and counts its bytes; ``guarded`` turns a failure of the image service's
stream into the Cinder error that says what to do.  For Cinder's own
Glance image service the data is asked for without python-glanceclient's
check (``glance.download.open_stream``, ``do_checksum=False``) and the
verifier hashes it; only an image service reached through its
``download`` alone, whose client checks the hash itself
(``glance.download.client_verifies``), is left to that check, which
``guarded`` then reports.
"""

from __future__ import annotations

import errno
import hashlib
import threading
from typing import Iterable
from typing import Iterator
from typing import Optional

from oslo_log import log as logging

from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.upstream import compat

LOG = logging.getLogger(__name__)


class ChecksumVerifier:
    """Hashes a stream with the algorithm Glance used and compares
    (``ImageFacts.expected_hash``); an image Glance has no hash for
    cannot be verified, which is logged and allowed, as Cinder does.
    With ``hashing`` False (the client verified the stream, see
    ``glance.download``) only the byte count is checked.
    """

    def __init__(self, facts: ImageFacts, hashing: bool = True) -> None:
        self.image_id = facts.id
        self.expected_size = facts.size
        expected = facts.expected_hash if hashing else None
        self.algo, self.expected = expected or (None, None)
        if hashing and expected is None:
            LOG.warning('Image %s has no checksum in Glance; its data cannot '
                        'be verified.', self.image_id)
        hasher = (hashlib.new(self.algo, usedforsecurity=False)
                  if self.algo else None)
        # hashlib releases the GIL; under eventlet it must also leave the hub.
        self._hasher = compat.tpool_wrap(hasher) if hasher else None
        self._hashing: Optional[threading.Thread] = None
        self.received = 0

    def update(self, data: bytes | memoryview) -> None:
        """Hash ``data`` while the caller goes on (writing it, reading the
        next block): one block is hashed at a time, in order, so at most
        one block waits here.  Hashing is the one step of an import that
        touches every byte; overlapping it with the rest is what keeps a
        stream near the speed of the hash alone."""
        self.received += len(data)
        if self._hasher is None:
            return
        self._wait_for_hash()
        # Green under eventlet (and the hash runs in its thread pool).
        self._hashing = threading.Thread(target=self._hasher.update,
                                         args=(data,), daemon=True,
                                         name='bootcache-hash')
        self._hashing.start()

    def _wait_for_hash(self) -> None:
        if self._hashing is not None:
            self._hashing.join()
            self._hashing = None

    def finish(self) -> None:
        """Raise unless every byte arrived and the hash matches."""
        self._wait_for_hash()
        if self.expected_size is not None and \
                self.received != self.expected_size:
            raise errors.ImageStreamFailed(
                image_href=self.image_id,
                reason='the stream ended after %d of %d bytes' % (
                    self.received, self.expected_size))
        if self._hasher is None:
            return
        actual = self._hasher.hexdigest()
        if actual != self.expected:
            raise errors.ImageHashMismatch(image_id=self.image_id,
                                           algo=self.algo, actual=actual,
                                           expected=self.expected)


def _is_client_integrity_error(exc: BaseException) -> bool:
    # python-glanceclient, when it checks a download itself, raises
    # IOError(EPIPE, 'Corrupt image download. ...') after the last chunk
    # on a mismatch (glanceclient.common.utils.integrity_iter), before
    # the verifier sees the end of the stream.
    return (isinstance(exc, OSError) and exc.errno == errno.EPIPE and
            'Corrupt image download' in str(exc))


def guarded(chunks: Iterable[bytes], image_id: str,
            expected_size: Optional[int] = None) -> Iterator[bytes]:
    """The image service's chunks; a failure of it is ImageStreamFailed,
    or ImageDataCorrupt when the client found the hash wrong.  A hash
    error after a short stream is the short stream (ImageStreamFailed):
    the client hashed what arrived, and a retry may well succeed."""
    iterator = iter(chunks)
    received = 0
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            if not _is_client_integrity_error(exc):
                raise errors.ImageStreamFailed(
                    image_href=image_id,
                    reason='the image service failed mid-stream (%s)' % exc)
            if expected_size is not None and received < expected_size:
                raise errors.ImageStreamFailed(
                    image_href=image_id,
                    reason='the stream ended after %d of %d bytes' % (
                        received, expected_size))
            raise errors.ImageDataCorrupt(image_id=image_id,
                                          reason=exc.strerror)
        received += len(chunk)
        yield chunk
