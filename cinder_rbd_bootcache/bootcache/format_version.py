"""Which format the boot cache of a pool is in, and what a release may do.

Everything the cache keeps in a pool (the names of :mod:`naming`, the
entries' RBD images, snapshots and image metadata, the records of
:mod:`index`, the counters, the population and eviction locks, kept and
trashed entries) is one *format*, numbered.  The number is the value of
the omap key ``format`` of the pool's ``bootcache.index`` object: the
object every reader of the cache's state consults, and the one place
where a compare-and-set (``omap_cmp``) makes stamping it safe between
hosts.  No key means format 1: what every release before the stamp wrote
(0.3.0 to 0.6.0).

The rule, for every release:

* it reads and updates format 1 up to its own :data:`FORMAT`;  a pool in
  an older format is upgraded to :data:`FORMAT` (nothing to do for format
  1: this release writes format 1) and stamped, once, by whichever host
  first uses it;
* a pool in a newer format, or with a value it cannot read, it leaves
  alone: no population, clone, count, lock, eviction, sweep or reindex
  there; creates fall back to a plain import into the volume, and the
  host says so once in its log, in ``doctor`` and in ``stats``;
* the format goes up only for a change an older release would misread or
  corrupt; additions it ignores safely (a new metadata key, a new kind of
  index record) keep the format.

A process reads the key once per pool (:class:`FormatGuard`) and again
at each maintenance (the driver's stats refresh), not at every create.
"""

from __future__ import annotations

import dataclasses
import errno
import threading
from typing import Any
from typing import Optional

from oslo_log import log as logging

from cinder_rbd_bootcache.bootcache import index as entry_index
from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.upstream import compat

LOG = logging.getLogger(__name__)

#: The omap key of ``bootcache.index`` that holds the format number.
KEY = entry_index.FORMAT
#: The format this release writes, and the newest it reads.
FORMAT = 1
#: The format of a pool with no ``format`` key (releases 0.3.0 to 0.6.0).
UNVERSIONED = 1


class FormatNotKnown(Exception):
    """The pool's boot cache is in a format this release does not know."""

    def __init__(self, verdict: 'Verdict') -> None:
        super().__init__(verdict.problem())
        self.verdict = verdict


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the ``format`` key of a pool says, and what that allows."""
    pool: str
    #: The key's value as read; None when the pool has no key.
    raw: Optional[bytes]

    @property
    def found(self) -> Optional[int]:
        """The pool's format; None when the value is not a format
        number."""
        if self.raw is None:
            return UNVERSIONED
        try:
            text = self.raw.decode('ascii')
        except UnicodeDecodeError:
            return None
        if not text.isdigit() or int(text) < 1:
            return None
        return int(text)

    @property
    def usable(self) -> bool:
        """Whether this release may read and update the pool's cache."""
        return self.found is not None and self.found <= FORMAT

    @property
    def stamped(self) -> bool:
        return self.raw is not None

    def shown(self) -> str:
        """The format as ``doctor`` and ``stats`` show it."""
        if self.found is None:
            return 'unreadable (%r)' % self.raw
        if not self.stamped:
            return '%d (not stamped yet)' % self.found
        return str(self.found)

    def problem_args(self) -> dict:
        """The arguments of :data:`PROBLEM` for this verdict."""
        if self.found is None:
            what = 'an unreadable format value %r' % self.raw
        else:
            what = 'format %d' % self.found
        return {'pool': self.pool, 'what': what, 'known': FORMAT}

    def problem(self) -> str:
        """What an operator reads when the cache is bypassed."""
        return PROBLEM % self.problem_args()


#: Logged once, shown by ``doctor`` and ``stats``: a host that meets a
#: format it does not know.
PROBLEM = ('The boot cache in pool %(pool)s is in %(what)s, and this host '
           'knows format %(known)d at most: it bypasses that cache (creates '
           'import the image into the volume; it never populates, clones, '
           'evicts, sweeps or reindexes there). Upgrade cinder-rbd-bootcache '
           'on this host to the release the other hosts of the backend run')


def read(ioctx: Any) -> Optional[bytes]:
    """The ``format`` value of the pool open as ``ioctx``, or None."""
    ioctx = compat.tpool_wrap(ioctx)
    with ceph.rados.ReadOpCtx() as op:
        found, _ret = ioctx.get_omap_vals_by_keys(op, (KEY,))
        try:
            ioctx.operate_read_op(op, entry_index.OBJECT)
        except ceph.rados.ObjectNotFound:
            return None
        return dict(found).get(KEY)


def stamp(ioctx: Any, expected: Optional[bytes], value: int) -> bool:
    """Set the pool's format to ``value`` if it is still ``expected``
    (None: no key), in one write op; False when another host changed it
    first (read it again)."""
    ioctx = compat.tpool_wrap(ioctx)
    with ceph.rados.WriteOpCtx() as op:
        op.new(ceph.rados.LIBRADOS_CREATE_IDEMPOTENT)
        # A missing key compares equal to the empty value.  The binding
        # takes text; a value that is not ASCII is never overwritten.
        op.omap_cmp(KEY, (expected or b'').decode('ascii'),
                    ceph.rados.LIBRADOS_CMPXATTR_OP_EQ)
        ioctx.set_omap(op, (KEY,), (str(value).encode(),))
        try:
            ioctx.operate_write_op(op, entry_index.OBJECT)
        except ceph.rados.OSError as exc:
            if exc.errno == errno.ECANCELED:
                return False
            raise
    return True


def check(ioctx: Any, pool: str, may_stamp: bool = True) -> Verdict:
    """The pool's verdict; a pool in an older format than :data:`FORMAT`
    (or none) is upgraded and stamped first when ``may_stamp``."""
    raw = read(ioctx)
    for _attempt in range(3):
        verdict = Verdict(pool, raw)
        if not may_stamp or not verdict.usable or (
                verdict.stamped and verdict.found == FORMAT):
            return verdict
        # Format 1 up to FORMAT: nothing to migrate while FORMAT is 1.
        if stamp(ioctx, raw, FORMAT):
            LOG.info('Stamped the boot cache of pool %(pool)s with format '
                     '%(format)d (it was %(was)s).',
                     {'pool': pool, 'format': FORMAT,
                      'was': verdict.shown()})
            return Verdict(pool, str(FORMAT).encode())
        raw = read(ioctx)  # another host stamped it first
    return Verdict(pool, raw)


class FormatGuard:
    """One process's (one backend's) view of its pools' formats: read
    once per pool, again on :meth:`verdict` with ``refresh``; the first
    time a pool is found unusable, and each time what it holds changes,
    one warning in the log."""

    def __init__(self, may_stamp: bool = True) -> None:
        self._may_stamp = may_stamp
        self._lock = threading.Lock()
        self._verdicts: dict[str, Verdict] = {}

    def known(self, pool: str) -> Optional[Verdict]:
        """The pool's verdict if this process has read it."""
        with self._lock:
            return self._verdicts.get(pool)

    def verdict(self, ioctx: Any, pool: str,
                refresh: bool = False) -> Verdict:
        """The pool's verdict, read through ``ioctx`` unless known."""
        known = self.known(pool)
        if known is not None and not refresh:
            return known
        found = check(ioctx, pool, self._may_stamp)
        with self._lock:
            # Decided under the lock: two first readers warn once.
            before = self._verdicts.get(pool)
            self._verdicts[pool] = found
        if not found.usable and (before is None or before.raw != found.raw):
            LOG.warning(PROBLEM + '.', found.problem_args())
        elif found.usable and before is not None and not before.usable:
            LOG.info('The boot cache in pool %(pool)s is in format '
                     '%(format)s again, which this host knows: it uses it '
                     'again.', {'pool': pool, 'format': found.shown()})
        return found

    def require(self, ioctx: Any, pool: str, refresh: bool = False
                ) -> Verdict:
        """The verdict; raises FormatNotKnown if the cache is unusable."""
        found = self.verdict(ioctx, pool, refresh)
        if not found.usable:
            raise FormatNotKnown(found)
        return found


def figures(verdict: Verdict) -> dict[str, int]:
    """The pool's format (0: unreadable) and whether this host uses its
    cache, for stats."""
    return {'format': verdict.found or 0,
            'format_known': FORMAT,
            'bypassed': int(not verdict.usable)}
