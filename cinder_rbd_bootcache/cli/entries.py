"""``list``, ``show``, ``stats``, ``evict`` and ``verify``: the cache as it
is in Ceph, read and changed through :mod:`catalog` and :mod:`cache`, the
modules the driver uses."""

from __future__ import annotations

import datetime
from typing import Any
from typing import Iterable
from typing import Optional

from cliff import lister
from cliff import show

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.bootcache import catalog as catalog_mod
from cinder_rbd_bootcache.bootcache import format_version
from cinder_rbd_bootcache.bootcache import integrity
from cinder_rbd_bootcache.bootcache import population
from cinder_rbd_bootcache.ceph import api as ceph

LIST_COLUMNS = ('Image ID', 'Size', 'Virtual Size', 'Bytes Used', 'Clones',
                'Hits', 'Created', 'Last Used', 'State')
#: ``list`` without ``--long`` reads no entry, so it has no clone counts.
SHORT_COLUMNS = tuple(c for c in LIST_COLUMNS if c != 'Clones')


#: Seconds ``evict`` waits for a population of the image under way (a
#: create returns before its entry is finished, which takes seconds).
POPULATION_WAIT = 60

#: Metadata keys ``show`` already prints under a column of ``list``.
SHOWN_ABOVE = ('image_id', 'size', 'virtual_size', 'bytes_used', 'created')


def timestamp(seconds: float) -> str:
    """UTC ISO 8601, or '-' for never."""
    if not seconds:
        return '-'
    return datetime.datetime.fromtimestamp(
        seconds, datetime.timezone.utc).isoformat(timespec='seconds')


def _int(value: Any) -> Optional[int]:
    return int(value) if value not in (None, '') else None


def list_row(info: catalog_mod.EntryInfo) -> tuple:
    return (info.image_id, _int(info.metadata.get('size')),
            _int(info.metadata.get('virtual_size')) or info.size,
            info.bytes_used, info.children, info.hits,
            timestamp(info.created), timestamp(info.last_used), info.state)


def indexed_rows(found: catalog_mod.Catalog) -> list[tuple]:
    """``list``'s rows (``SHORT_COLUMNS``) from the index and the
    counters alone: a cache of thousands of entries lists in a few omap
    reads (no image is opened, so the clone counts are not known:
    ``--long`` reads them)."""
    contents = found.indexed()
    counts = found.counters.all()
    rows = []
    for image_id, record in contents.ready.items():
        last_used = counts.get(catalog_mod.last_used_key(image_id), 0)
        rows.append((image_id, record.size,
                     record.virtual_size or record.size, record.bytes_used,
                     counts.get(catalog_mod.hits_key(image_id), 0),
                     timestamp(record.created), timestamp(last_used / 1000),
                     catalog_mod.READY))
    for name in contents.building:
        parsed = catalog_mod.parse_name(name)
        if parsed:
            rows.append((parsed[0], None, None, None, None, '-', '-',
                         catalog_mod.BUILDING_STATE))
    for image_id in contents.kept.values():
        rows.append((image_id, None, None, None, None, '-', '-',
                     catalog_mod.KEPT))
    for image_id in contents.trash.values():
        rows.append((image_id, None, None, None, None, '-', '-',
                     catalog_mod.IN_TRASH))
    return sorted(rows, key=lambda row: (row[0], row[-1]))


def ready_entries(found: catalog_mod.Catalog,
                  image_ids: Iterable[str] = ()) -> list:
    """Ready entries, all or those of ``image_ids`` (every one must
    exist); each named one is opened by its name."""
    image_ids = list(image_ids)
    if not image_ids:
        return sorted((e for e in found.entries(include_trash=False)
                       if e.state == catalog_mod.READY),
                      key=lambda e: e.image_id)
    ready = {i: found.entry(i) for i in image_ids}
    missing = [i for i, info in ready.items() if info is None]
    kept = set(found.indexed().kept.values()) if missing else set()
    if kept & set(missing):
        raise LookupError('the entry of image %s was evicted already and '
                          'is kept for its clones of clone format 1: it is '
                          'no longer cloned, and goes at the first '
                          'maintenance after its last clone is gone'
                          % ', '.join(sorted(kept & set(missing))))
    if missing:
        raise LookupError('no boot-cache entry for image %s in this '
                          'backend (see "cinder-rbd-bootcache list")'
                          % ', '.join(missing))
    return [ready[i] for i in image_ids]


class ListEntries(lister.Lister):
    """One row per boot-cache entry: ready, building, kept or in the trash.

    A kept entry was evicted while clones of clone format 1 needed it:
    it is no longer cloned and goes at the first maintenance after its
    last clone is gone.  The Clones column comes with --long.
    """

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument('--long', action='store_true',
                            help='add the Clones column: open every entry '
                                 'to count its clones (one RBD image open '
                                 'per entry; without it, the list reads '
                                 'only the index)')
        return parser

    def take_action(self, parsed_args: Any) -> tuple:
        with self.app.backend.catalog() as found:
            if not parsed_args.long:
                return SHORT_COLUMNS, indexed_rows(found)
            rows = [list_row(e) for e in sorted(
                found.entries(), key=lambda e: (e.image_id, e.state))]
        return LIST_COLUMNS, rows


class Reindex(lister.Lister):
    """Rebuild the index of entries from a listing of the pool.

    Needed only after entries were created or removed by hand, or by a
    driver version without the index, e.g. during a rolling upgrade.
    """

    def take_action(self, parsed_args: Any) -> tuple:
        with self.app.backend.catalog() as found:
            contents = found.reindex()
        return (('Ready', 'Building', 'Kept', 'In Trash'),
                [(len(contents.ready), len(contents.building),
                  len(contents.kept), len(contents.trash))])


class ShowEntry(show.ShowOne):
    """Every field of one entry, including its RBD image and snapshot."""

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument('image_id', metavar='IMAGE_ID',
                            help='Glance image id')
        return parser

    def take_action(self, parsed_args: Any) -> tuple:
        backend = self.app.backend
        with backend.catalog() as found:
            matching = found.entries_of(parsed_args.image_id)
        if not matching:
            raise LookupError('no boot-cache entry for image %s in pool %s '
                              '(see "cinder-rbd-bootcache list")'
                              % (parsed_args.image_id, backend.pool))
        # A ready entry before one kept, in the trash or building.
        info = sorted(matching,
                      key=lambda e: e.state != catalog_mod.READY)[0]
        fields = dict(zip(LIST_COLUMNS, list_row(info)))
        fields.update({
            'Pool': backend.pool,
            'RBD Image': info.name,
            'Snapshot': catalog_mod.SNAPSHOT,
            'Trash ID': info.trash_id or '-',
            'Clone Format 2': info.clone_format_2,
        })
        for key, value in sorted(info.metadata.items()):
            if key in SHOWN_ABOVE:
                continue
            fields.setdefault(key.replace('_', ' ').title(), value)
        return tuple(fields), tuple(fields.values())


class Stats(show.ShowOne):
    """Figures of the cache: what it holds, what it saved, its format.

    A host whose release does not know the cache's format bypasses the
    cache: then only the format is shown, with what to do.
    """

    def take_action(self, parsed_args: Any) -> tuple:
        backend = self.app.backend
        verdict = backend.format()
        if not verdict.usable:
            fields = format_fields(verdict)
            fields['Note'] = verdict.problem()
            return tuple(fields), tuple(fields.values())
        with backend.catalog() as found:
            figures = found.summary()
            ready = found.indexed().ready
            counts = found.counters.all()
        asked = figures['hits'] + figures['misses']
        saved = sum(record.populate_seconds *
                    counts.get(catalog_mod.hits_key(image_id), 0)
                    for image_id, record in ready.items())
        fields = {
            'Entries': figures['entries'],
            'Bytes': figures['bytes'],
            'Building': figures['building'],
            'Kept': figures['kept'],
            'In Trash': figures['in_trash'],
            'Hits': figures['hits'],
            'Misses': figures['misses'],
            'Hit Rate': round(figures['hits'] / asked, 4) if asked else None,
            'Downloads Avoided': figures['hits'],
            'Time Saved Seconds': round(saved, 1),
        }
        fields.update(format_fields(
            backend.formats.known(backend.pool) or verdict))
        return tuple(fields), tuple(fields.values())


def format_fields(verdict: format_version.Verdict) -> dict:
    """``stats``' rows of the pool's format."""
    return {'Format': verdict.shown(),
            'Format Known': format_version.FORMAT,
            'Bypassed': not verdict.usable}


class Evict(lister.Lister):
    """Take entries out of the cache, now or by the configured limits.

    An evicted entry is no longer cloned.  One with clones goes to the
    RBD trash (clone format 2) or is kept (clone format 1), and either
    way goes at the first maintenance after its last clone is gone.
    """

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument('image_ids', metavar='IMAGE_ID', nargs='*',
                            help='entries to evict')
        which = parser.add_mutually_exclusive_group()
        which.add_argument('--policy', action='store_true',
                           help='apply bootcache_max_size_gb, '
                                'bootcache_max_entries and '
                                'bootcache_max_idle_hours now, and remove '
                                'kept and trashed entries whose clones '
                                'are gone, as a stats refresh of '
                                'cinder-volume does')
        which.add_argument('--all', action='store_true',
                           help='evict every entry')
        return parser

    def take_action(self, parsed_args: Any) -> tuple:
        chosen = sum([bool(parsed_args.image_ids), parsed_args.policy,
                      parsed_args.all])
        if chosen != 1:
            raise ValueError('name entries to evict, or pass --policy or '
                             '--all (one of them)')
        columns = ('Image ID', 'Result', 'Reason')
        backend = self.app.backend
        if parsed_args.policy:
            return columns, self._by_policy(backend)
        rows = []
        with backend.catalog() as found:
            entries = ready_entries(found, parsed_args.image_ids)
            for info in entries:
                rows.append(self._remove(found, info,
                                         'evicted by an operator'))
        return columns, rows

    @staticmethod
    def _remove(found: catalog_mod.Catalog, info: Any, reason: str) -> tuple:
        try:
            outcome = found.remove(info, reason, wait=POPULATION_WAIT)
        except catalog_mod.PopulationUnderWay:
            return (info.image_id, 'not evicted',
                    'its image was still being populated after %d s; '
                    'evict it again once that is done' % POPULATION_WAIT)
        return (info.image_id, outcome, outcome_reason(outcome, reason))

    def _by_policy(self, backend: Any) -> list:
        boot_cache = backend.boot_cache()
        done = boot_cache.maintain()
        if done.format is not None and not done.format.usable:
            raise format_version.FormatNotKnown(done.format)
        rows = [(e.image_id, e.outcome, outcome_reason(e.outcome, e.reason))
                for e in done.evicted]
        rows += [(image_id, catalog_mod.REMOVED, 'evicted before; its last '
                  'clone is gone') for image_id in done.swept]
        if not boot_cache.limits.any:
            self.app.stderr.write(
                'No limit is set: bootcache_max_size_gb, '
                'bootcache_max_entries and bootcache_max_idle_hours are 0 '
                'in [%s] of cinder.conf, so no entry is evicted by '
                'policy.\n' % backend.name)
        elif not done.evicted:
            self.app.stderr.write('Every limit holds: no entry was '
                                  'evicted.\n')
        return sorted(rows)


class Verify(lister.Lister):
    """Re-read entries and compare them with their recorded hash.

    Exits with status 1 if any does not match.
    """

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument('image_ids', metavar='IMAGE_ID', nargs='*',
                            help='entries to verify (default: all)')
        return parser

    def take_action(self, parsed_args: Any) -> tuple:
        self.failed = 0
        rows = []
        with self.app.backend.catalog() as found:
            for info in ready_entries(found, parsed_args.image_ids):
                if integrity.content_digest_pending(info.metadata):
                    population.record_content_digest(
                        found.ioctx, info.name, info.size)
                    rows.append((info.image_id, 'ok', 'content digest '
                                 'recorded now; the next verify compares '
                                 'with it'))
                    continue
                with ceph.open_image(found.ioctx, info.name,
                                     snapshot=catalog_mod.SNAPSHOT,
                                     read_only=True) as image:
                    ok, detail = integrity.check(image, info.metadata)
                self.failed += not ok
                rows.append((info.image_id, 'ok' if ok else 'MISMATCH',
                             detail))
        return ('Image ID', 'Result', 'Detail'), rows

    def run(self, parsed_args: Any) -> int:
        result = super().run(parsed_args)
        if self.failed:
            self.app.LOG.error('%d boot-cache entries do not match their '
                               'recorded hash: evict them ("cinder-rbd-'
                               'bootcache evict IMAGE_ID"); the next create '
                               'populates them again.', self.failed)
            return 1
        return result


def outcome_reason(outcome: str, reason: str) -> str:
    """The Reason column of an eviction's row."""
    if outcome == catalog_mod.KEPT:
        return ('%s; clones of clone format 1 need it: kept, never cloned '
                'again, removed by the first maintenance after its last '
                'clone is deleted or flattened' % reason)
    if outcome == catalog_mod.TRASHED:
        return ('%s; it has clones (clone format 2): in the RBD trash, '
                'removed by the first maintenance after its last clone is '
                'deleted' % reason)
    if outcome == cache.ALREADY_GONE:
        return 'another host or an operator removed it first'
    return reason
