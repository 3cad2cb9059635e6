"""Which boot-cache entries go, least recently used first.

Pure: the caller lists the entries and does the removing, so the rules are
table-tested without Ceph.  An entry that still has clones stops counting
once it is moved to the RBD trash or kept for its clones (it is no longer
looked up, and goes with its last clone); one the caller could not touch
(its image is being populated) keeps counting against the limits, so the
next least recently used one is tried.
"""

from __future__ import annotations

import dataclasses
from typing import Callable
from typing import Iterable
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Limits:
    """0 means no limit; ``max_idle_seconds`` counts from the last use
    (or from creation, for an entry never used since)."""
    max_bytes: int = 0
    max_entries: int = 0
    max_idle_seconds: int = 0

    @property
    def any(self) -> bool:
        return bool(self.max_bytes or self.max_entries
                    or self.max_idle_seconds)


@dataclasses.dataclass(frozen=True)
class Candidate:
    image_id: str
    bytes_used: int
    last_used: float


def _over(limits: Limits, count: int, total: int) -> Optional[str]:
    if limits.max_entries and count > limits.max_entries:
        return 'the cache holds %d entries, more than %d' % (
            count, limits.max_entries)
    if limits.max_bytes and total > limits.max_bytes:
        return 'the cache holds %d bytes, more than %d' % (
            total, limits.max_bytes)
    return None


def evict(candidates: Iterable[Candidate], limits: Limits, now: float,
          remove: Callable[[Candidate, str], bool],
          keep: Iterable[str] = ()) -> list[tuple[Candidate, str]]:
    """Call ``remove(candidate, reason)`` until every limit holds.

    ``remove`` returns whether the entry stopped counting (removed,
    moved to the trash or kept for its clones).  ``keep``: image ids
    never evicted now (the entry just populated for a waiting volume).
    Returns what stopped counting.
    """
    keep = set(keep)
    remaining = sorted(candidates, key=lambda c: c.last_used)
    count = len(remaining)
    total = sum(c.bytes_used for c in remaining)
    removed = []
    for candidate in remaining:
        if candidate.image_id in keep:
            continue
        idle = now - candidate.last_used
        if limits.max_idle_seconds and idle >= limits.max_idle_seconds:
            reason = 'unused for %d s, the limit is %d s' % (
                idle, limits.max_idle_seconds)
        else:
            reason = _over(limits, count, total)
        if reason is None:
            continue
        if remove(candidate, reason):
            removed.append((candidate, reason))
            count -= 1
            total -= candidate.bytes_used
    return removed
