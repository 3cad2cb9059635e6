"""Upstream's RBDDriver and ours, side by side, on the same sandbox.

``python -m bootcache_testkit.bench`` (``tox -e bench``) runs every
scenario of :mod:`bootcache_testkit.harness.scenarios` through Cinder's
real create_volume flow, once with ``cinder.volume.drivers.rbd.RBDDriver``
and once with ``BootCacheRBDDriver``, A then B, for several rounds, and
prints per scenario the median seconds of each, the ratio (upstream / ours:
above 1 means ours is faster), the median CPU seconds of each create and
their ratio, the downloads from Glance of each create, the peak RSS
growth of the process during the create and how our driver was configured
for the row; then, per scenario and driver, the wall seconds beside the
CPU seconds and where they were spent; then the goals (ratios between
rows, a download count or a memory bound) and whether this run met them
(the tables and goals: ``bench_report``).

The CPU seconds of a create are what the work costs, however the two
cores of a small machine were shared: the cinder-volume process (every
thread: the flow, eventlet's pool, librados and librbd), the child
processes it ran and waited for (qemu-img, upstream's ``rbd import``,
cryptsetup), and the sandbox's OSDs (from ``/proc/<pid>/stat``), which
store every byte written (``harness/cpu_cost.py``).  The total is the
sum of the three; the CPU ratios and CPU goals are on totals.  The
monitor and manager, and work a create leaves to run after it returns
(the boot cache's finisher), are not counted.

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

``qcow2-rbd-store`` creates from a qcow2 image whose Glance location is
an ``rbd://`` snapshot in the sandbox: upstream cannot clone it (its
clone needs raw) and downloads it; ours converts from the snapshot, with
no download (the downloads column counts them); the boot cache's entry is
removed after each create, so every create converts.  ``qcow2-http`` and
``qcow2-http-local`` create from the qcow2 over HTTP with the boot cache
off, ours staging the download in a temporary RBD image
(``bootcache_import_staging = rbd``) or in ``image_conversion_dir``
(``local``); upstream runs beside the first.  Where the code has no
``bootcache_import_staging`` option, both run as the code stages, and
their "ours as" column says so.

Every volume is read back and compared with its image; a wrong volume makes
the run fail.  Timings are noisy on a shared 2-core machine: compare ratios
from one run, never figures from different runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bootcache_testkit import bench_report
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

#: How our driver is configured for each scenario: the backend it runs on
#: and the label its row carries.  Everything not listed runs as shipped.
OURS_AS = {
    'download-raw': ('ours_import', 'boot cache off: the import alone'),
    'download-qcow2': ('ours_import', 'boot cache off: the import alone'),
    'image-cache': ('ours_cache', 'boot cache off, image-volume cache on'),
    'qcow2-http': ('ours_staging_rbd', 'boot cache off, staged in RBD'),
    'qcow2-http-local': ('ours_staging_local',
                         'boot cache off, staged locally'),
}
SHIPPED = ('ours', 'as shipped (boot cache on)')
#: Scenarios upstream does not run (ours only).
OURS_ONLY = {'qcow2-http-local'}
STAGING_OPTION = 'bootcache_import_staging'


def _staging(choice: str) -> dict:
    """The options of a backend that stages downloads as ``choice``;
    none where the code has no such option (``_ours_as`` says so)."""
    return {STAGING_OPTION: choice} if _has_staging_option() else {}


def _has_staging_option() -> bool:
    from cinder_rbd_bootcache import options
    return any(opt.dest == STAGING_OPTION
               for _group, opts in options.list_opts() for opt in opts)


def _ours_as(scenario: str) -> tuple[str, str]:
    backend, label = OURS_AS.get(scenario, SHIPPED)
    if backend.startswith('ours_staging_') and not _has_staging_option():
        label = 'boot cache off, no %s: staged as the code does' % (
            STAGING_OPTION)
    return backend, label


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
        session.BackendSpec('ours_staging_rbd', cinder_process.OUR_DRIVER,
                            dict(bootcache_enabled=False,
                                 **_staging('rbd'))),
        session.BackendSpec('ours_staging_local', cinder_process.OUR_DRIVER,
                            dict(bootcache_enabled=False,
                                 **_staging('local'))),
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
                        cpu_seconds=float('nan'), cpu_process=float('nan'),
                        cpu_children=float('nan'), cpu_osds=float('nan'),
                        ok=True, rss_growth=0, downloads=0))
                    continue
                for label in ('upstream', 'ours'):
                    if label == 'upstream' and (
                            scenario in scenarios_mod.SCALED or
                            scenario in OURS_ONLY):
                        continue  # ours only, see the module doc
                    backend = label
                    if label == 'ours':
                        backend = _ours_as(scenario)[0]
                    outcomes = s.runner.run(scenario, s.backends[backend],
                                            s.backends[label + '_cache'])
                    for o in outcomes:
                        samples.append(dict(
                            round=round_no, scenario=o.scenario,
                            driver=label, seconds=o.seconds,
                            cpu_seconds=o.cpu.total,
                            cpu_process=o.cpu.process,
                            cpu_children=o.cpu.children,
                            cpu_osds=o.cpu.osds, ok=o.ok,
                            rss_growth=o.rss_growth, downloads=o.downloads,
                            parent=o.parent, detail=o.detail, error=o.error,
                            ours_as=_ours_as(scenario)[1]))
                        print('  round %d %-23s %-8s %6.2fs %6.2f CPU s '
                              '(%.2f + %.2f children + %.2f OSDs) %d dl %s'
                              % (round_no, o.scenario, label, o.seconds,
                                 o.cpu.total, o.cpu.process, o.cpu.children,
                                 o.cpu.osds, o.downloads,
                                 'ok' if o.ok else 'FAILED ' + o.detail),
                              flush=True)
        for backend in s.backends.values():
            backend.delete_all()
        s.runner.cleanup_images()
        # Ours leaves nothing (the functional tests fail otherwise); what is
        # left here is upstream's volume-*.deleted leak, one per clone source.
        leftovers = s.leftovers()
    bench_report.report(samples, args, volume_gb, leftovers)
    return 0 if all(x['ok'] for x in samples) else 1


def _all_scenarios() -> list[str]:
    from bootcache_testkit.harness import scenarios
    return (list(scenarios.SCENARIOS) + list(scenarios.SCALED) +
            list(scenarios.ENCRYPTED) + list(scenarios.SOURCES) +
            list(FLOORS))


if __name__ == '__main__':
    sys.exit(main())
