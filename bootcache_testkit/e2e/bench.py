"""Upstream's RBDDriver and ours, side by side, through the real services.

``python -m bootcache_testkit.e2e.bench`` (``tox -e bench-e2e``,
``tools/run bench-e2e``) starts the end-to-end environment with two
backends in the one cinder-volume (under eventlet, Cinder's default):
``upstream`` (``cinder.volume.drivers.rbd.RBDDriver``, pool
``volumes_upstream``) and ``ours`` (``BootCacheRBDDriver`` with its
defaults, boot cache on, pool ``volumes``), each with a volume type of its
name, in the same Ceph sandbox.  cinder-volume gets every image from the
real glance-api through python-glanceclient.

Scenarios (:mod:`bootcache_testkit.e2e.bench_scenarios`), each on a
fresh image, upstream then ours, for several rounds:

``clone``        first create from an image in Glance's rbd store (both
                 copy-on-write clone it)
``first-raw``    first create from a raw image in Glance's file store
``first-qcow2``  the same with its qcow2
``second-raw``   the second create of a raw image (the first untimed)
``storm``        10 creates of a new image at once (wall time)
``nova-bfv``     10 Nova servers booted from volume at once (until every
                 server is ACTIVE, then every build action must be a
                 success)

Printed: the median seconds of each driver, the ratio (upstream / ours:
above 1 means ours is faster), the downloads of the image per run (GETs in
glance-api's access log), then the goals (``goals``: how much faster than
upstream each scenario should be) and whether this run met them; every
sample goes to a JSON file.  Each sample also records the CPU-seconds
the machine and each service spent in its timed window
(:mod:`bootcache_testkit.e2e.cpu_budget`), and a second table shows
their medians: a create that needs more CPU-seconds than the machine's
cores can give in a given time cannot finish sooner, whatever the driver.
Benches never assert timings; a volume in
error, a failed build or (unless ``--no-verify``) a volume
whose content is not the image's makes the run exit 1.  Timings are noisy
on a shared 2-core machine: compare ratios from one run, not figures from
different runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import traceback
from typing import Any

from bootcache_testkit.e2e import cpu_budget

DRIVERS = ('upstream', 'ours')
#: Parts shown in the CPU table (any other is summed in "other").
CPU_PARTS = ('cinder-volume', 'cinder-api', 'cinder-scheduler', 'glance-api',
             'ceph-osd')
DEFAULT_SCENARIOS = ('clone', 'first-raw', 'first-qcow2', 'second-raw',
                     'storm', 'nova-bfv')


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float('nan')


def _samples_of(samples: list[dict], scenario: str, driver: str
                ) -> list[dict]:
    return [x for x in samples
            if (x['scenario'], x['driver']) == (scenario, driver)]


def _seconds(samples: list[dict], scenario: str, driver: str) -> float:
    return _median([x['seconds']
                    for x in _samples_of(samples, scenario, driver)])


def goals(samples: list[dict], concurrent: int) -> list[dict]:
    """The goals whose scenarios this run measured: (goal, value,
    target, met).  Ratios are upstream / ours unless the goal says."""
    found = []

    def ratio_goal(text: str, scenario: str, at_least: float) -> None:
        value = (_seconds(samples, scenario, 'upstream') /
                 _seconds(samples, scenario, 'ours'))
        if not math.isnan(value):
            found.append(dict(goal=text, value=value,
                              target='>= %.1f' % at_least,
                              met=value >= at_least))

    def downloads_goal(text: str, scenario: str, most: int) -> None:
        runs = _samples_of(samples, scenario, 'ours')
        if runs:
            value = max(x['downloads'] for x in runs)
            found.append(dict(goal=text, value=value, target='<= %d' % most,
                              met=value <= most))

    ratio_goal('first create raw >= 2.5x faster than upstream',
               'first-raw', 2.5)
    ratio_goal('first create qcow2 >= 1.7x faster than upstream',
               'first-qcow2', 1.7)
    ratio_goal('second create >= 10x faster than upstream\'s second',
               'second-raw', 10)
    downloads_goal('storm of %d (ours): 1 download (most of any round)'
                   % concurrent, 'storm', 1)
    storm = _seconds(samples, 'storm', 'ours')
    first = _seconds(samples, 'first-raw', 'ours')
    if not math.isnan(storm / first):
        found.append(dict(
            goal='storm of %d (ours): wall <= 1.5x first create (ours)'
                 % concurrent,
            value=storm / first, target='<= 1.5', met=storm / first <= 1.5))
    runs = _samples_of(samples, 'nova-bfv', 'ours')
    if runs:
        built = sum(x['extra'].get('built', 0) for x in runs)
        found.append(dict(
            goal='%d boot-from-volume servers (ours): all built'
                 % concurrent,
            value=built, target='%d' % (concurrent * len(runs)),
            met=built == concurrent * len(runs)))
    downloads_goal('%d boot-from-volume servers (ours): 1 download'
                   % concurrent, 'nova-bfv', 1)
    return found


def cpu_table(samples: list[dict], names: list[str]) -> None:
    """Medians of the CPU-seconds of each timed window, per part."""
    timed = [x for x in samples if x.get('extra', {}).get('cpu')]
    if not timed:
        return
    cores = os.cpu_count() or 1
    print()
    print('CPU-seconds in the timed window, medians (%d cores; use = busy / '
          '(seconds x cores))' % cores)
    print('%-12s %-8s %6s %6s %5s %s %6s' % (
        'scenario', 'driver', 'wall', 'busy', 'use',
        ' '.join('%9s' % part[:9] for part in CPU_PARTS), 'other'))
    for name in names:
        for driver in DRIVERS:
            runs = [x for x in timed if x['scenario'] == name and
                    x['driver'] == driver]
            if not runs:
                continue

            def median(part: str) -> float:
                return _median([x['extra']['cpu'].get(part, 0.0)
                                for x in runs])
            wall = _median([x['seconds'] for x in runs])
            busy = median(cpu_budget.MACHINE)
            other = _median([
                x['extra']['cpu'][cpu_budget.MACHINE] - sum(
                    x['extra']['cpu'].get(part, 0.0) for part in CPU_PARTS)
                for x in runs])
            print('%-12s %-8s %6.2f %6.2f %4.0f%% %s %6.2f' % (
                name, driver, wall, busy, 100 * busy / (wall * cores),
                ' '.join('%9.2f' % median(part) for part in CPU_PARTS),
                other))


def report(samples: list[dict], args: Any, environment_facts: dict) -> int:
    """Print the table and the goals, write the JSON; the exit status."""
    names: list[str] = []
    for x in samples:
        if x['scenario'] not in names:
            names.append(x['scenario'])
    summary = {}
    print()
    print('%d MiB image (%d MiB data) -> %d GiB volumes, median of %d '
          'rounds, cinder-volume under %s' % (
              args.virtual_mib, args.data_mib, args.volume_gib, args.rounds,
              args.cinder_volume))
    print('%-12s %10s %10s %8s %6s %8s %5s' % (
        'scenario', 'upstream s', 'ours s', 'ratio', 'up dl', 'ours dl',
        'ok'))
    for name in names:
        up = _seconds(samples, name, 'upstream')
        ours = _seconds(samples, name, 'ours')
        dls = {d: [x['downloads'] for x in _samples_of(samples, name, d)]
               for d in DRIVERS}
        ok = all(x['ok'] for x in samples if x['scenario'] == name)
        summary[name] = dict(upstream_median=up, ours_median=ours,
                             ratio=up / ours, downloads=dls, ok=ok)
        print('%-12s %10.2f %10.2f %7.2fx %6s %8s %5s' % (
            name, up, ours, up / ours,
            '/'.join(map(str, dls['upstream'])) or '-',
            '/'.join(map(str, dls['ours'])) or '-', 'yes' if ok else 'NO'))
    print('(seconds from the API call until Cinder showed the final status,'
          ' polled every <= 0.1 s; storm = until the last of %d volumes; '
          'nova-bfv = until all %d servers were ACTIVE; ratio = upstream / '
          'ours; dl = downloads of the image from glance-api per round)'
          % (args.concurrent, args.concurrent))
    cpu_table(samples, names)
    met = goals(samples, args.concurrent)
    if met:
        print()
        print('%-58s %8s %7s %4s' % ('goal', 'value', 'target', 'met'))
        for goal in met:
            print('%-58s %8.2f %7s %4s' % (goal['goal'], goal['value'],
                                           goal['target'],
                                           'yes' if goal['met'] else 'NO'))
    failed = [x for x in samples if not x['ok']]
    for x in failed:
        print('FAILED round %d %s %s: %s' % (x['round'], x['scenario'],
                                             x['driver'], x['detail']))
    with open(args.json, 'w') as f:
        json.dump({'args': vars(args), 'environment': environment_facts,
                   'summary': summary, 'goals': met, 'samples': samples},
                  f, indent=2, default=str)
    print('samples written to %s' % args.json)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    from bootcache_testkit.harness import disk_images

    parser = argparse.ArgumentParser(
        prog='python -m bootcache_testkit.e2e.bench',
        description=__doc__.splitlines()[0])
    disk_images.add_size_arguments(parser, 1024, 256)
    parser.add_argument('--volume-gib', type=int, default=0,
                        help='volume size (default: the image, rounded up)')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--scenarios', default=','.join(DEFAULT_SCENARIOS),
                        help='comma-separated subset of %s (default: all)'
                             % ','.join(DEFAULT_SCENARIOS))
    parser.add_argument('--concurrent', type=int, default=10,
                        help='creates of the storm, servers of nova-bfv '
                             '(default 10)')
    parser.add_argument('--json', default='bench-e2e-results.json',
                        help='where to write every sample (default '
                             'bench-e2e-results.json)')
    parser.add_argument('--memstore-gib', type=int, default=8,
                        help='RAM the sandbox OSD may use; upstream\'s storm '
                             'writes a full copy per volume (default 8)')
    parser.add_argument('--cinder-volume', choices=('eventlet', 'threading'),
                        default='eventlet',
                        help='cinder-volume\'s concurrency (default '
                             'eventlet, Cinder 29\'s)')
    parser.add_argument('--no-verify', dest='verify', action='store_false',
                        help='do not read every volume back from Ceph and '
                             'compare it with the image')
    parser.add_argument('--keep', metavar='DIR',
                        help='run the environment in DIR and keep its logs '
                             '(default: a temporary directory, removed)')
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(',') if s]
    unknown = set(scenarios) - set(DEFAULT_SCENARIOS)
    if unknown:
        parser.error('unknown scenarios: %s' % ', '.join(sorted(unknown)))
    if args.keep and os.path.isdir(args.keep) and os.listdir(args.keep):
        # Another run's Ceph or MariaDB files there make the sandbox
        # hang or the services fail in ways that look like ours.
        parser.error('--keep %s: not empty; give a new directory'
                     % args.keep)
    # SIGTERM stops every service as a failure would (not a bare exit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from oslo_utils import units

    from bootcache_testkit.e2e import bench_scenarios
    from bootcache_testkit.e2e import environment
    from bootcache_testkit.e2e import services

    virtual = args.virtual_mib * units.Mi
    args.volume_gib = args.volume_gib or -(-virtual // units.Gi)
    backends = (
        services.BackendSection('upstream', environment.UPSTREAM_DRIVER,
                                'volumes_upstream'),
        services.BackendSection('ours', environment.OUR_DRIVER, 'volumes'),
    )
    print('bench-e2e: %d MiB virtual, %d MiB data, %d GiB volumes, %d '
          'rounds, %s; drivers A=upstream B=ours; cinder-volume under %s'
          % (args.virtual_mib, args.data_mib, args.volume_gib, args.rounds,
             ','.join(scenarios), args.cinder_volume), flush=True)
    samples: list[dict] = []
    with tempfile.TemporaryDirectory(prefix='bench-e2e-disks-') as tmp:
        disks = {}
        for fmt in ('raw', 'qcow2'):
            path, raw = disk_images.cached(tmp, virtual,
                                           args.data_mib * units.Mi, fmt)
            disks[fmt] = bench_scenarios.Disk(path, raw, fmt, virtual)
        small = disk_images.BLOCK
        path, raw = disk_images.cached(tmp, small, small, 'raw', seed=2)
        warm_up_disk = bench_scenarios.Disk(path, raw, 'raw', small)
        directory = os.path.abspath(args.keep) if args.keep else None
        if directory:
            os.makedirs(directory, exist_ok=True)
        with environment.Environment(
                directory, memstore_bytes=args.memstore_gib * units.Gi,
                keep=bool(directory), backends=backends,
                volume_concurrency=args.cinder_volume) as env:
            print('environment up in %.0f s (%s)' % (
                env.seconds_to_start, env.directory), flush=True)
            runner = bench_scenarios.Runner(
                env, disks, args.volume_gib, concurrent=args.concurrent,
                verify=args.verify)
            runner.prepare()
            runner.warm_up(warm_up_disk)
            try:
                for round_no in range(1, args.rounds + 1):
                    for scenario in scenarios:
                        for s in runner.run(scenario, DRIVERS, round_no):
                            samples.append(dict(round=round_no, **vars(s)))
                            busy = s.extra.get('cpu', {}).get(
                                cpu_budget.MACHINE, float('nan'))
                            print('  round %d %-12s %-8s %7.2fs %d dl '
                                  '%5.2f CPU-s %s' % (
                                      round_no, s.scenario, s.driver,
                                      s.seconds, s.downloads, busy,
                                      'ok' if s.ok else 'FAILED ' + s.detail),
                                  flush=True)
            except Exception as e:
                # The services go down either way; what was measured is
                # still reported, and the run fails.
                traceback.print_exc()
                samples.append(dict(round=round_no, scenario=scenario,
                                    driver='-', seconds=float('nan'),
                                    ok=False, downloads=0, extra={},
                                    detail='aborted: %s' % e))
            try:
                left = runner.leftovers()
            except Exception as e:  # a report matters more than this
                left = {'error': [str(e)]}
            if left:
                print('RBD images left after every scenario: %s' % left)
            facts = {'directory': env.directory, 'leftovers': left,
                     'seconds_to_start': env.seconds_to_start,
                     'backends': [b._asdict() for b in env.backends]}
    return report(samples, args, facts)


if __name__ == '__main__':
    sys.exit(main())
