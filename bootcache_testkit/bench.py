"""Upstream's RBDDriver and ours, side by side, on the same sandbox.

``python -m bootcache_testkit.bench`` (``tox -e bench``) runs every
scenario of :mod:`bootcache_testkit.harness.scenarios` through Cinder's
real create_volume flow, once with ``cinder.volume.drivers.rbd.RBDDriver``
and once with ``BootCacheRBDDriver``, A then B, for several rounds, and
prints per scenario the median seconds of each, the ratio (upstream / ours:
above 1 means ours is faster), the median CPU seconds of each (every
thread of the process: the flow, eventlet's pool, librados), the peak RSS
growth of the process during
the create and how our driver was configured for the row; then the goals
(ratios between rows, or a memory bound) and whether this run met them.

It measures what users run: cinder-volume under eventlet (its default;
``--concurrency threading`` for native threads), images arriving in 64 KiB
chunks (python-glanceclient 4.4.0 and later deliver 1 MiB ones, see
``image_service.DOWNLOAD_CHUNK``: this is the harder case), and our
driver as shipped, boot cache on.  Rows that run ours otherwise say so in
their "ours as" column: ``download-*`` with the boot cache off time the
import pipeline alone, ``image-cache`` uses Cinder's image-volume cache
instead.

The boot-cache rows run a fresh image twice: upstream downloads both
times, ours populates its boot cache on the first create and clones it on
the second; the entry is removed after each pair, so every first create
really is one.  ``boot-cache-4x`` and ``-8x`` repeat the raw pair with a
larger image (ours only): the 4x row bounds the memory a create may use,
the 8x row shows that a hit does not grow with the image.
``boot-cache-luks`` is the raw pair into volumes of a LUKS volume type:
upstream's flow downloads the image for each encrypted create, converts
it locally and imports it; ours (the driver's flow hook skips that
download) makes each volume's LUKS container from the boot-cache entry,
populated by the first create's one download.  A ``floor`` row
times the same non-zero bytes written with plain librbd aio writes: no
driver can beat it on a download path; ``floor+sha512`` adds hashing every
byte, which an import that verifies Glance's ``os_hash_value`` cannot
avoid.

Every volume is read back and compared with its image; a wrong volume makes
the run fail.  Timings are noisy on a shared 2-core machine: compare ratios
from one run, never figures from different runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from bootcache_testkit.harness import disk_images
from bootcache_testkit.harness import runtime


def floor_seconds(sandbox: Any, raw_path: str, size: int,
                  hash_algo: str | None = None, in_flight: int = 16) -> float:
    """Write the non-zero blocks of ``raw_path`` with librbd aio writes.

    The same writer the import pipeline uses, fed from a local file with
    nothing else in the loop: the least time any driver needs to put these
    bytes into Ceph.  With ``hash_algo`` every byte is also hashed, the
    least time for an import that verifies Glance's hash.
    """
    import hashlib

    import rbd

    from cinder_rbd_bootcache.image_import import rbd_writer

    block = disk_images.BLOCK
    name = 'bench-floor-%d' % time.monotonic_ns()
    with sandbox.client() as cluster, cluster.open_ioctx('volumes') as ioctx:
        rbd.RBD().create(ioctx, name, size, old_format=False,
                         features=rbd.RBD_FEATURE_LAYERING)
        try:
            with rbd.Image(ioctx, name) as image, open(raw_path, 'rb') as f:
                started = time.monotonic()
                hasher = hashlib.new(hash_algo) if hash_algo else None
                writer = rbd_writer.SparseWriter(image, in_flight)
                offset = 0
                while chunk := f.read(block):
                    if hasher:
                        hasher.update(chunk)
                    writer.write(offset, chunk)
                    offset += len(chunk)
                writer.drain()
                image.flush()
                seconds = time.monotonic() - started
        finally:
            rbd.RBD().remove(ioctx, name)
    return seconds


#: Floor rows: plain writes, and writes plus Glance's default hash.
FLOORS = {'floor': None, 'floor+sha512': 'sha512'}

#: (goal, (scenario, driver) measured, (scenario, driver) compared with,
#:  most allowed measured/compared ratio).  "First create" rows run our
#: driver as shipped (boot cache on), "download" rows with the boot cache
#: off, which times the import pipeline alone.
GOALS = [
    ('first create raw >= 3x faster than upstream',
     ('boot-cache-first', 'ours'), ('boot-cache-first', 'upstream'), 1 / 3),
    ('first create qcow2 >= 2x faster than upstream',
     ('boot-cache-qcow2-first', 'ours'),
     ('boot-cache-qcow2-first', 'upstream'), 1 / 2),
    ('first create raw within 1.15x of the import alone',
     ('boot-cache-first', 'ours'), ('download-raw', 'ours'), 1.15),
    ('first create qcow2 within 1.15x of the import alone',
     ('boot-cache-qcow2-first', 'ours'), ('download-qcow2', 'ours'), 1.15),
    ('import alone raw >= 3x faster than upstream',
     ('download-raw', 'ours'), ('download-raw', 'upstream'), 1 / 3),
    ('import alone qcow2 >= 1.5x faster than upstream',
     ('download-qcow2', 'ours'), ('download-qcow2', 'upstream'), 1 / 1.5),
    ('import alone raw within 1.3x of floor+sha512',
     ('download-raw', 'ours'), ('floor+sha512', 'librbd'), 1.3),
    ('boot-cache hit within 1.5x of our glance-rbd clone',
     ('boot-cache-second', 'ours'), ('glance-rbd', 'ours'), 1.5),
    ('boot-cache hit >= 5x faster than upstream\'s second create',
     ('boot-cache-second', 'ours'), ('boot-cache-second', 'upstream'), 1 / 5),
    ('encrypted first create >= 2x faster than upstream',
     ('boot-cache-luks-first', 'ours'),
     ('boot-cache-luks-first', 'upstream'), 1 / 2),
    ('encrypted second create >= 5x faster than upstream',
     ('boot-cache-luks-second', 'ours'),
     ('boot-cache-luks-second', 'upstream'), 1 / 5),
    ('hit for an 8x larger image within 1.3x of the hit',
     ('boot-cache-8x-second', 'ours'), ('boot-cache-second', 'ours'), 1.3),
    # Ours reads and inspects the first 64 KiB of Glance's snapshot before
    # the clone (a raw-declared qcow2 is refused); upstream clones unread.
    ('glance-rbd clone no more than 5% slower than upstream',
     ('glance-rbd', 'ours'), ('glance-rbd', 'upstream'), 1.05),
]

#: GOALS on CPU seconds instead of wall seconds.
CPU_GOALS = [
    ('glance-rbd clone no more than 5% more CPU than upstream',
     ('glance-rbd', 'ours'), ('glance-rbd', 'upstream'), 1.05),
]

#: (goal, (scenario, driver), most peak RSS growth in MiB).
MEMORY_GOALS = [
    ('peak RSS growth < 128 MiB, first create of a 4x image',
     ('boot-cache-4x-first', 'ours'), 128),
]

#: How our driver is configured for each scenario: the backend it runs on
#: and the label its row carries.  Everything not listed runs as shipped.
OURS_AS = {
    'download-raw': ('ours_import', 'boot cache off: the import alone'),
    'download-qcow2': ('ours_import', 'boot cache off: the import alone'),
    'image-cache': ('ours_cache', 'boot cache off, image-volume cache on'),
}
SHIPPED = ('ours', 'as shipped (boot cache on)')


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float('nan')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bootcache_testkit.bench',
                                     description=__doc__.splitlines()[0])
    disk_images.add_size_arguments(parser, 1024, 256)
    parser.add_argument('--volume-gib', type=int, default=0,
                        help='volume size (default: the image, rounded up)')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--scenarios', default=','.join(_all_scenarios()),
                        help='comma-separated subset')
    parser.add_argument('--json', default='bench-results.json',
                        help='where to write every sample (default '
                             'bench-results.json)')
    runtime.add_harness_arguments(parser)
    args = parser.parse_args(argv)
    runtime.patch(args.concurrency)

    from oslo_utils import units

    from bootcache_testkit.harness import cinder_process
    from bootcache_testkit.harness import session

    from bootcache_testkit.harness import scenarios as scenarios_mod

    specs = [
        session.BackendSpec('upstream', cinder_process.UPSTREAM_DRIVER),
        session.BackendSpec('upstream_cache', cinder_process.UPSTREAM_DRIVER,
                            {'image_volume_cache_enabled': True}),
        session.BackendSpec('ours', cinder_process.OUR_DRIVER),
        session.BackendSpec('ours_import', cinder_process.OUR_DRIVER,
                            {'bootcache_enabled': False}),
        session.BackendSpec('ours_cache', cinder_process.OUR_DRIVER,
                            {'image_volume_cache_enabled': True,
                             'bootcache_enabled': False}),
    ]
    scenarios = [s for s in args.scenarios.split(',') if s]
    samples: list[dict] = []
    virtual = args.virtual_mib * units.Mi
    volume_gb = args.volume_gib or -(-virtual // units.Gi)
    print('bench: %d MiB virtual, %d MiB data, %d GiB volumes (the luks '
          'rows %d GiB), %d rounds, cinder-volume under %s, drivers '
          'A=upstream B=ours'
          % (args.virtual_mib, args.data_mib, volume_gb, volume_gb + 1,
             args.rounds, args.concurrency), flush=True)
    with session.cinder_session(
            specs, virtual_size=virtual, data_bytes=args.data_mib * units.Mi,
            memstore_bytes=args.memstore_gib * units.Gi,
            concurrency=args.concurrency, workdir=args.workdir,
            debug=args.debug) as s:
        s.runner.volume_gb = volume_gb
        for fmt in ('raw', 'qcow2'):
            s.runner.disk(fmt)  # make the files before timing anything
        for round_no in range(1, args.rounds + 1):
            for scenario in scenarios:
                if scenario in FLOORS:
                    raw = s.runner.disk('raw')[1]
                    samples.append(dict(
                        round=round_no, scenario=scenario, driver='librbd',
                        seconds=floor_seconds(s.sandbox, raw,
                                              volume_gb * units.Gi,
                                              FLOORS[scenario]),
                        cpu_seconds=float('nan'),
                        ok=True, rss_growth=0, downloads=0))
                    continue
                for label in ('upstream', 'ours'):
                    if scenario in scenarios_mod.SCALED and \
                            label == 'upstream':
                        continue  # ours only, see the module doc
                    backend = label
                    if label == 'ours':
                        backend = OURS_AS.get(scenario, SHIPPED)[0]
                    outcomes = s.runner.run(scenario, s.backends[backend],
                                            s.backends[label + '_cache'])
                    for o in outcomes:
                        samples.append(dict(
                            round=round_no, scenario=o.scenario,
                            driver=label, seconds=o.seconds,
                            cpu_seconds=o.cpu_seconds, ok=o.ok,
                            rss_growth=o.rss_growth, downloads=o.downloads,
                            parent=o.parent, detail=o.detail, error=o.error,
                            ours_as=OURS_AS.get(scenario, SHIPPED)[1]))
                        print('  round %d %-23s %-8s %6.2fs %6.2f CPU s %s'
                              % (round_no, o.scenario, label, o.seconds,
                                 o.cpu_seconds,
                                 'ok' if o.ok else 'FAILED ' + o.detail),
                              flush=True)
        for backend in s.backends.values():
            backend.delete_all()
        s.runner.cleanup_images()
        # Ours leaves nothing (the functional tests fail otherwise); what is
        # left here is upstream's volume-*.deleted leak, one per clone source.
        leftovers = s.leftovers()
    _report(samples, args, volume_gb, leftovers)
    return 0 if all(x['ok'] for x in samples) else 1


def _all_scenarios() -> list[str]:
    from bootcache_testkit.harness import scenarios
    return (list(scenarios.SCENARIOS) + list(scenarios.SCALED) +
            list(scenarios.ENCRYPTED) + list(FLOORS))


def _report(samples: list[dict], args: Any, volume_gb: int,
            leftovers: dict) -> None:
    from oslo_utils import units
    names: list[str] = []
    for x in samples:
        if x['scenario'] not in names:
            names.append(x['scenario'])
    rows = []
    summary = {}
    for name in names:
        by = {d: [x for x in samples if x['scenario'] == name
                  and x['driver'] == d]
              for d in ('upstream', 'ours', 'librbd')}
        up = _median([x['seconds'] for x in by['upstream']])
        ours = _median([x['seconds'] for x in by['ours'] or by['librbd']])
        ratio = up / ours if by['upstream'] and ours else float('nan')
        cpu = {d: _median([x['cpu_seconds'] for x in by[d]])
               for d in ('upstream', 'ours')}
        rss = {d: max([x['rss_growth'] for x in by[d]] or [0]) / units.Mi
               for d in ('upstream', 'ours')}
        summary[name] = dict(upstream_median=up, ours_median=ours,
                             ratio=ratio,
                             upstream_cpu_median=cpu['upstream'],
                             ours_cpu_median=cpu['ours'],
                             upstream_peak_rss_mib=rss['upstream'],
                             ours_peak_rss_mib=rss['ours'])
        ours_as = (by['ours'][0].get('ours_as', '') if by['ours']
                   else 'plain librbd')
        summary[name]['ours_as'] = ours_as
        rows.append('%-23s %10s %10.3f %8s %8s %8s %10.1f %9.1f  %s' % (
            name, '%.3f' % up if by['upstream'] else '-', ours,
            '%.2fx' % ratio if by['upstream'] else '-',
            '%.3f' % cpu['upstream'] if by['upstream'] else '-',
            '%.3f' % cpu['ours'] if by['ours'] else '-',
            rss['upstream'], rss['ours'], ours_as))
    print()
    print('%d MiB image (%d MiB data) -> %d GiB volumes, median of %d '
          'rounds, cinder-volume under %s, images in 64 KiB chunks'
          % (args.virtual_mib, args.data_mib, volume_gb, args.rounds,
             args.concurrency))
    print('%-23s %10s %10s %8s %8s %8s %10s %9s  %s' % (
        'scenario', 'upstream s', 'ours s', 'ratio', 'up CPU s', 'ours CPU',
        'up RSS MiB', 'ours RSS', 'ours as'))
    print('\n'.join(rows))
    print('(ratio = upstream / ours; CPU s = CPU seconds of the whole '
          'process during the create; RSS = peak resident growth of the '
          'cinder-volume process during the create, not of its qemu-img or '
          'rbd children; floor = plain librbd aio writes of the same data; '
          'floor+sha512 = the same while hashing every byte, as a verified '
          'import must)')
    goals = _goals(samples)
    if goals:
        print()
        print('%-58s %7s %8s %4s' % ('goal', 'value', 'allowed', 'met'))
        for goal in goals:
            print('%-58s %7.3f %8.3f %4s' % (
                goal['goal'], goal['ratio'], goal['allowed'],
                'yes' if goal['met'] else 'NO'))
        print('(value = measured / compared-with median, e.g. ours / '
              'upstream, or MiB for a memory goal; a goal is met when it '
              'is at most the allowed value)')
    if leftovers:
        print('RBD images left after every volume was deleted (upstream\'s '
              'volume-*.deleted leak; the sandbox goes with them): %s'
              % {k: len(v) for k, v in leftovers.items()})
    with open(args.json, 'w') as f:
        json.dump({'args': vars(args), 'volume_gb': volume_gb,
                   'summary': summary, 'goals': goals, 'samples': samples,
                   'leftovers': leftovers}, f, indent=2, default=str)
    print('samples written to %s' % args.json)


def _goals(samples: list[dict]) -> list[dict]:
    """The GOALS both of whose rows this run measured."""
    def median(key: tuple[str, str], metric: str = 'seconds') -> float:
        return _median([x[metric] for x in samples
                        if (x['scenario'], x['driver']) == key])
    goals = []
    for goal, measured, compared, most, metric in (
            [g + ('seconds',) for g in GOALS] +
            [g + ('cpu_seconds',) for g in CPU_GOALS]):
        ratio = median(measured, metric) / median(compared, metric)
        if ratio == ratio:  # both rows present: not NaN
            goals.append(dict(goal=goal, measured=measured,
                              compared=compared, ratio=ratio,
                              allowed=most, met=ratio <= most))
    for goal, measured, most_mib in MEMORY_GOALS:
        growth = [x['rss_growth'] for x in samples
                  if (x['scenario'], x['driver']) == measured]
        if growth:
            peak = max(growth) / (1024 * 1024)
            goals.append(dict(goal=goal, measured=measured, compared=None,
                              ratio=peak, allowed=most_mib,
                              met=peak < most_mib))
    return goals


if __name__ == '__main__':
    sys.exit(main())
