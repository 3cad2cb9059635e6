"""``drain``: remove every boot-cache entry no volume depends on, and
list the ones that remain with what depends on them (:mod:`draining`)."""

from __future__ import annotations

from typing import Any

from cliff import lister

from cinder_rbd_bootcache.bootcache import draining
from cinder_rbd_bootcache.cli import backend as backend_mod
from cinder_rbd_bootcache.cli import entries

COLUMNS = ('Image ID', 'State', 'Result', 'Dependent', 'Volume ID')

#: Exit status when entries remain (1 is an error, 2 a usage error).
ENTRIES_REMAIN = 3


def rows(drained: list[draining.Drained]) -> list[tuple]:
    """One row per dependent of each entry; one row for an entry that
    has none."""
    found = []
    for entry in drained:
        for dependent in entry.dependents or [None]:
            found.append((entry.image_id, entry.state, entry.result,
                          str(dependent) if dependent else '-',
                          (dependent and dependent.volume_id) or '-'))
    return found


def summary(drained: list[draining.Drained], dry_run: bool,
            backend_name: str, volume_driver: str) -> str:
    """What the operator reads on stderr after the table."""
    remaining = [d for d in drained if d.remains]
    lines = []
    if dry_run:
        lines.append('Dry run: nothing was changed.')
    if remaining:
        lines.append(
            '%d boot-cache entries %s: volumes (or images) are cloned '
            'from them, or they are being populated.  Delete the '
            'dependents, or flatten them ("rbd flatten POOL/NAME"), then '
            'run drain again.' % (len(remaining),
                                  'would remain' if dry_run else 'remain'))
    else:
        lines.append('No boot-cache entry %s.'
                     % ('would remain' if dry_run else 'remains'))
    if volume_driver == backend_mod.OUR_DRIVER:
        lines.append(
            '[%s] volume_driver is still %s: the cinder-volume services '
            'that run it may populate entries again after this drain; run '
            'drain again after switching them to another driver.'
            % (backend_name, volume_driver))
    return '\n'.join(lines) + '\n'


class Drain(lister.Lister):
    """Remove every boot-cache entry no volume depends on.

    Ready entries without clones, kept and trashed entries whose last
    clone is gone, and half-built images nobody is populating are
    removed; the entries that remain are listed with their dependents
    (pool/name of each clone, and its Cinder volume id where the name
    tells it).  Safe while cinder-volume still runs the driver on the
    pool: each removal holds the image's population lock, as evict does,
    and an entry cloned meanwhile stays for its clone.  Exits 0 when no
    entry remains, 3 when some remain.
    """

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument('--dry-run', action='store_true',
                            help='change nothing: list what would be '
                                 'removed and what would remain')
        return parser

    def take_action(self, parsed_args: Any) -> tuple:
        backend = self.app.backend
        names = draining.VolumeNames(backend.conf.volume_name_template)
        with backend.catalog() as found:
            if parsed_args.dry_run:
                drained = draining.plan(found, names)
            else:
                drained = draining.drain(
                    found, names, backend.section.bootcache_lock_lease,
                    entries.POPULATION_WAIT)
        self.remaining = sum(d.remains for d in drained)
        self.said = summary(drained, parsed_args.dry_run, backend.name,
                            backend.volume_driver)
        return COLUMNS, rows(drained)

    def run(self, parsed_args: Any) -> int:
        self.remaining, self.said = 0, ''
        result = super().run(parsed_args)
        # After the table: what it means, and what to do next.
        self.app.stderr.write(self.said)
        return ENTRIES_REMAIN if self.remaining else result
