"""The boot cache at scale (issue 15): what the cache costs as it grows.

``python -m bootcache_testkit.bench_scale`` (``tox -e bench-scale``,
``tools/run bench-scale``) runs our driver as shipped (boot cache on,
default options) on the sandbox, with Cinder's real VolumeManager, in
three configurations of a pool, each a pool (and a backend) of its own:

(a) 1 entry, no other RBD image;
(b) ``--entries`` entries (1,000), no other RBD image;
(c) the same plus ``--plain`` plain RBD images (20,000): thin, empty,
    1 GiB, named like Cinder's volumes, as a production pool holds them.

The three are measured round by round in turn, (a) (b) (c) (a) (b) (c)
..., so that a change of the machine's load (other jobs on a shared
2-core machine) falls on all three alike instead of on whichever was
measured last.  In each it times, median of ``--rounds``:
``BootCache.maintain()`` (the work of every stats refresh; ``--maintains``
calls per round) with limits that evict nothing but make the eviction
computation run (``max_entries=5000``) and with the defaults (no
limits); the real ``cinder-rbd-bootcache list -f json`` and ``stats
-f json`` commands (wall time of the process, start-up included); the
cache's own lookup of an entry (``BootCache.lookup``, median of 10 calls);
and ``--creates`` creates per round that hit the cache (lookup and clone,
through Cinder's real create_volume flow) and as many that populate a new
entry (a new image each time; the entry is removed again after it is
finished, so the configuration keeps its number of entries).  One
untimed hit and population come first in each configuration.  Then it
prints the figures, the ratios (b)/(a) and (c)/(b), and the goals of the
issue, met or NO.

How the pool is filled: the entry of configuration (a), and every entry
a timed create populates, are real populations through Cinder's flow.
The other entries of (b) are made directly, the way the cache makes
them (``population.Population.fill``/``finish``): recorded as half-built in
the index, the RBD image ``bootcache.<IMAGE_ID>.building.<COOKIE>``
created, the ``bootcache.*`` metadata of ``ImageFacts.entry_metadata()``
plus bytes_used/created/populate_seconds set, snapshot ``golden`` made
and protected, renamed to ``bootcache.<IMAGE_ID>``, published in the
index (``Catalog.publish``) and a miss counted (as ``finish`` does) --
but no data written, so they are thin (bytes_used 0).  The plain images
of (c) are made with ``rbd.RBD().create``.  Both run in a child process
with native threads (librbd releases the GIL), not under the eventlet
hub of the Cinder under test; their set-up times are reported.

Last, ``--workers`` (10) separate cinder-volume processes (the harness's
worker, each its own Cinder and Glance stand-in) are released at the same
moment, through their stdin, on ``--worker-images`` (5) new images, one
volume of each image per process: the bench reports downloads per image
(exactly 1 each is required), the wall time from the release to the last
report, and that every volume's bytes match its image (each worker reads
its volumes back).

Timings are noisy on a shared 2-core machine: compare ratios from one
run, not figures from different runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any
from typing import Optional
import uuid

from bootcache_testkit.harness import disk_images
from bootcache_testkit.harness import runtime

#: The configurations, each in a pool of its own, measured round by round
#: in turn.  (c) is the pool the harness's workers use.
CONFIGS = ('a', 'b', 'c')
POOLS = {'a': 'scale-a', 'b': 'scale-b', 'c': 'volumes'}

#: What is timed in each configuration: (key, label).
MEASURES = (
    ('maintain-limits', 'maintain(), max_entries=5000 (evicts none)'),
    ('maintain-defaults', 'maintain(), defaults (no limits)'),
    ('cli-list', 'cinder-rbd-bootcache list -f json'),
    ('cli-stats', 'cinder-rbd-bootcache stats -f json'),
    ('lookup', 'BootCache.lookup() of the hit\'s entry'),
    ('create-hit', 'create, cache hit (lookup + clone)'),
    ('create-population', 'create, populates a new entry'),
)

#: (goal, (config, measure), compared with (config, measure) or None,
#:  most allowed: a ratio, or seconds when compared with nothing).
GOALS = [
    ('maintain() with {entries} entries < 2 s (b)',
     ('b', 'maintain-limits'), None, 2.0),
    ('maintain() with {entries} entries < 2 s (c)',
     ('c', 'maintain-limits'), None, 2.0),
    ('maintain() (c)/(b) <= 1.2, max_entries=5000',
     ('c', 'maintain-limits'), ('b', 'maintain-limits'), 1.2),
    ('maintain() (c)/(b) <= 1.2, defaults',
     ('c', 'maintain-defaults'), ('b', 'maintain-defaults'), 1.2),
    ('hit create (b)/(a) <= 1.2',
     ('b', 'create-hit'), ('a', 'create-hit'), 1.2),
    ('population create (b)/(a) <= 1.2',
     ('b', 'create-population'), ('a', 'create-population'), 1.2),
    ('hit create (c)/(b) <= 1.2',
     ('c', 'create-hit'), ('b', 'create-hit'), 1.2),
    ('population create (c)/(b) <= 1.2',
     ('c', 'create-population'), ('b', 'create-population'), 1.2),
]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float('nan')


# -- filling the pool (a child process, native threads) ---------------------
def fill_main(argv: list[str]) -> int:
    """``python -m bootcache_testkit.bench_scale fill ...``: make entries
    directly and plain RBD images, with native threads; print one JSON
    line with the seconds each took."""
    parser = argparse.ArgumentParser(prog='bench_scale fill')
    parser.add_argument('--sandbox', required=True)
    parser.add_argument('--pool', default='volumes')
    parser.add_argument('--entries', type=int, default=0)
    parser.add_argument('--entry-size', type=int, default=4 << 20)
    parser.add_argument('--plain', type=int, default=0)
    parser.add_argument('--threads', type=int, default=8)
    args = parser.parse_args(argv)
    # Native threads: cinder.utils.tpool_wrap (the index) is then a no-op.
    runtime.patch('threading')
    import rbd

    from bootcache_testkit import sandbox as ceph_sandbox
    from cinder_rbd_bootcache.bootcache import catalog as catalog_mod
    from cinder_rbd_bootcache.bootcache import population
    from cinder_rbd_bootcache.glance.facts import ImageFacts

    def entry(ioctx: Any, catalog: Any, _n: int) -> None:
        image_id = str(uuid.uuid4())
        facts = ImageFacts(
            id=image_id, disk_format='raw', container_format='bare',
            size=args.entry_size, virtual_size=args.entry_size,
            hash_algo='sha512', hash_value=os.urandom(64).hex(),
            md5=os.urandom(16).hex())
        building = catalog_mod.building_name(image_id, uuid.uuid4().hex)
        name = catalog_mod.entry_name(image_id)
        catalog.add_half_built(building)
        rbd.RBD().create(ioctx, building, args.entry_size, old_format=False,
                         features=rbd.RBD_FEATURE_LAYERING)
        fields = population.entry_metadata(facts, 0.0, 0)
        with rbd.Image(ioctx, building) as image:
            for key, value in fields.items():
                image.metadata_set(catalog_mod.META + key, value)
            image.create_snap(catalog_mod.SNAPSHOT)
            image.protect_snap(catalog_mod.SNAPSHOT)
        rbd.RBD().rename(ioctx, building, name)
        catalog.publish(building, catalog_mod.EntryInfo(
            image_id, name, catalog_mod.READY, size=args.entry_size,
            metadata=fields))
        catalog.record_miss(image_id)

    def plain(ioctx: Any, _catalog: Any, _n: int) -> None:
        rbd.RBD().create(ioctx, 'volume-%s' % uuid.uuid4(), 1 << 30,
                         old_format=False,
                         features=rbd.RBD_FEATURE_LAYERING)

    sandbox = ceph_sandbox.Sandbox(args.sandbox)
    seconds = {}
    with sandbox.client(timeout=30) as cluster, \
            cluster.open_ioctx(args.pool) as ioctx:
        catalog = catalog_mod.Catalog(ioctx)
        for what, count, make in (('entries', args.entries, entry),
                                  ('plain', args.plain, plain)):
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
                for done in pool.map(lambda n: make(ioctx, catalog, n),
                                     range(count)):
                    pass
            seconds[what] = time.monotonic() - started
    print(json.dumps(seconds), flush=True)
    return 0


def _fill(sandbox: Any, pool: str, entries: int, plain: int,
          entry_size: int, threads: int) -> dict[str, float]:
    command = [sys.executable, '-m', 'bootcache_testkit.bench_scale', 'fill',
               '--sandbox', sandbox.directory, '--pool', pool,
               '--entries', str(entries),
               '--plain', str(plain), '--entry-size', str(entry_size),
               '--threads', str(threads)]
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=3600)
    if done.returncode:
        raise RuntimeError('filling the pool failed: %s' % done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fill_pools(sandbox: Any, args: Any, entry_size: int) -> dict[str, float]:
    """The entries of (b) and (c), the plain images of (c)."""
    setup = {}
    for config in ('b', 'c'):
        setup['entries-' + config] = _fill(
            sandbox, POOLS[config], args.entries - 1, 0, entry_size,
            args.threads)['entries']
        print('  %d entries made directly in pool (%s) in %.1f s' % (
            args.entries - 1, config, setup['entries-' + config]),
            flush=True)
    setup['plain'] = _fill(sandbox, POOLS['c'], 0, args.plain, entry_size,
                           args.threads)['plain']
    print('  %d plain RBD images made in pool (c) in %.1f s' % (
        args.plain, setup['plain']), flush=True)
    return setup


# -- what is timed ------------------------------------------------------------
def _maintain(backend: Any, **limits: int) -> tuple[float, dict]:
    """One ``maintain()`` as the driver's stats refresh runs it (its own
    connection, off the eventlet hub), with the backend's options and
    ``limits`` instead of its limits when given."""
    from cinder import utils

    from cinder_rbd_bootcache.bootcache import cache
    from cinder_rbd_bootcache.bootcache import eviction

    driver = backend.driver
    boot = cache.BootCache.from_configuration(driver.configuration,
                                              driver._connector())
    if limits:
        boot.limits = eviction.Limits(**limits)
    started = time.monotonic()
    figures = utils.tpool_wrap(boot).maintain().figures
    return time.monotonic() - started, figures


class CLI:
    """The real ``cinder-rbd-bootcache`` against the sandbox, as
    tests/functional/test_cli.py runs it."""

    def __init__(self, session: Any, directory: str, pool: str) -> None:
        from bootcache_testkit.harness import cli as harness_cli
        os.makedirs(directory, exist_ok=True)
        conversion = os.path.join(directory, 'conversion')
        os.makedirs(conversion, exist_ok=True)
        self.conf = harness_cli.write_conf(
            os.path.join(directory, 'cinder.conf'), session.sandbox,
            conversion, pool=pool)
        self.export = os.path.join(directory, 'glance.json')
        self.images = session.process.image_service

    def run(self, *args: str) -> tuple[float, Any]:
        self.images.export(self.export)
        command = [sys.executable, '-m', 'bootcache_testkit.harness.cli',
                   self.export, '--config-file', self.conf] + list(args) + [
                       '-f', 'json']
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=600)
        seconds = time.monotonic() - started
        if done.returncode:
            raise RuntimeError('%s failed: %s' % (' '.join(args),
                                                  done.stderr[-3000:]))
        return seconds, json.loads(done.stdout)


def _round(config: str, round_no: int, s: Any, backend: Any, cli: CLI,
           hit_meta: dict, creates: int, maintains: int) -> list[dict]:
    """Every measure once (each kind of create ``creates`` times, each
    maintain() ``maintains`` times) in the pool as it is."""
    samples = []

    def add(measure: str, seconds: float, ok: bool = True,
            **detail: Any) -> None:
        samples.append(dict(config=config, round=round_no, measure=measure,
                            seconds=seconds, ok=ok, **detail))
        print('  (%s) round %d %-18s %7.3fs %s' % (
            config, round_no, measure, seconds,
            'ok' if ok else 'FAILED %s' % detail), flush=True)

    for _n in range(maintains):
        seconds, figures = _maintain(backend, max_entries=5000)
        add('maintain-limits', seconds, entries=figures['entries'])
        seconds, figures = _maintain(backend)
        add('maintain-defaults', seconds, entries=figures['entries'])
    seconds, rows = cli.run('list')
    add('cli-list', seconds, rows=len(rows))
    seconds, figures = cli.run('stats')
    add('cli-stats', seconds, entries=figures['Entries'])

    seconds, found = _lookup(backend, hit_meta)
    add('lookup', seconds, ok=found)
    for _n in range(creates):
        hit = _hit(s, backend, hit_meta)
        add('create-hit', hit.seconds, ok=hit.ok, downloads=hit.downloads,
            parent=hit.parent, detail=hit.detail)
    for _n in range(creates):
        miss = _population(s, backend)
        add('create-population', miss.seconds, ok=miss.ok,
            downloads=miss.downloads, detail=miss.detail)
    return samples


def _lookup(backend: Any, meta: dict, calls: int = 10) -> tuple[float, bool]:
    """Median seconds of the cache's own lookup of the image's entry
    (by its name: open it, read its fingerprint, list its snapshots), the
    part of a hit that could grow with the cache; and whether it found
    the entry every time."""
    from cinder import utils

    from cinder_rbd_bootcache.bootcache import cache
    from cinder_rbd_bootcache.glance.facts import ImageFacts

    driver = backend.driver
    boot = utils.tpool_wrap(cache.BootCache.from_configuration(
        driver.configuration, driver._connector()))
    facts = ImageFacts.from_glance(meta)
    times, found = [], True
    for _n in range(calls):
        started = time.monotonic()
        found = found and boot.lookup(facts) is not None
        times.append(time.monotonic() - started)
    return statistics.median(times), found


def _hit(s: Any, backend: Any, meta: dict) -> Any:
    """A create from the cached image: no download, a clone of its
    entry; ``ok`` says so."""
    from cinder_rbd_bootcache.bootcache import catalog
    golden = '%s/%s@%s' % (backend.pool, catalog.entry_name(meta['id']),
                           catalog.SNAPSHOT)
    hit = s.runner.create(backend, 'hit', meta)
    hit.status = hit.status if (hit.downloads == 0 and
                                hit.parent == golden) else 'not a hit'
    return hit


def _population(s: Any, backend: Any) -> Any:
    """A create from a new image, which populates its entry; the entry
    is removed once finished, so the pool keeps its number of entries."""
    meta = s.runner.image('raw', 'file', shared=False)
    try:
        miss = s.runner.create(backend, 'population', meta)
        backend.join_finishers()
        if miss.downloads != 1:
            miss.status = 'not one download'
    finally:
        s.runner.images.delete(meta['id'])
        s.runner.remove_boot_cache_entry(backend, meta['id'])
    return miss


# -- many hosts ---------------------------------------------------------------
def _workers(s: Any, directory: str, workers: int, images: int) -> dict:
    """``workers`` cinder-volume processes, one volume of each of
    ``images`` new images each, released at once."""
    from cinder_rbd_bootcache.bootcache import catalog

    path, _raw = s.runner.disk('raw')
    image_ids = [str(uuid.uuid4()) for _ in range(images)]
    command = [sys.executable, '-m', 'bootcache_testkit.harness.worker',
               '--sandbox', s.sandbox.directory, '--volumes', '1',
               '--lease', '30']
    for image_id in image_ids:
        command += ['--image', path, '--image-id', image_id]
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        started = time.monotonic()
        for n in range(workers):
            workdir = os.path.join(directory, 'worker%d' % n)
            os.makedirs(workdir, exist_ok=True)
            log = open(os.path.join(workdir, 'stderr.log'), 'w')
            logs.append(log)
            procs.append(subprocess.Popen(
                command + ['--workdir', workdir], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, text=True))
        for proc in procs:
            ready = json.loads(proc.stdout.readline() or '{}')
            if not ready.get('ready'):
                raise RuntimeError('a worker did not start; see %s'
                                   % directory)
        startup = time.monotonic() - started
        released = time.monotonic()
        for proc in procs:
            proc.stdin.write('go\n')
            proc.stdin.flush()
        reports = []
        for proc in procs:
            line = proc.stdout.readline()
            reports.append(json.loads(line) if line else {})
        wall = time.monotonic() - released
        codes = [proc.wait(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        for log in logs:
            log.close()
    downloads = {image_id: sum(r.get('downloads_by_image', {}).get(
        image_id, 0) for r in reports) for image_id in image_ids}
    volumes = [v for r in reports for v in r.get('volumes', [])]
    golden = {image_id: '%s/%s@%s' % (POOLS['c'],
                                      catalog.entry_name(image_id),
                                      catalog.SNAPSHOT)
              for image_id in image_ids}
    verified = sum(1 for v in volumes if v['cloned'] and v['matches'])
    # One volume per image is filled by the population itself, the rest
    # are clones of its entry.
    parents_right = all(
        sorted((v['parent'] or '') for v in volumes
               if v['image_id'] == image_id) ==
        [''] + [golden[image_id]] * (workers - 1)
        for image_id in image_ids)
    ok = (all(n == 1 for n in downloads.values()) and codes == [0] * workers
          and verified == workers * images and len(volumes) == verified
          and parents_right)
    return dict(workers=workers, images=images, startup_seconds=startup,
                wall_seconds=wall,
                create_seconds=[r.get('seconds') for r in reports],
                downloads=downloads, volumes=len(volumes), verified=verified,
                parents_right=parents_right, exit_codes=codes, ok=ok)


# -- main ---------------------------------------------------------------------
def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['fill']:
        return fill_main(argv[1:])
    parser = argparse.ArgumentParser(prog='python -m bootcache_testkit.'
                                          'bench_scale',
                                     description=__doc__.splitlines()[0])
    disk_images.add_size_arguments(parser, 4, 4)
    parser.add_argument('--entries', type=int, default=1000,
                        help='entries of configurations (b) and (c) '
                             '(default 1000)')
    parser.add_argument('--plain', type=int, default=20000,
                        help='plain RBD images of configuration (c) '
                             '(default 20000)')
    parser.add_argument('--rounds', type=int, default=5,
                        help='rounds per configuration; medians are '
                             'reported (default 5)')
    parser.add_argument('--creates', type=int, default=3,
                        help='hits and populations timed per round '
                             '(default 3)')
    parser.add_argument('--maintains', type=int, default=5,
                        help='maintain() calls of each kind timed per round '
                             '(default 5)')
    parser.add_argument('--threads', type=int, default=8,
                        help='threads that fill the pool (default 8)')
    parser.add_argument('--workers', type=int, default=10,
                        help='cinder-volume processes at once (default 10)')
    parser.add_argument('--worker-images', type=int, default=5,
                        help='new images they create volumes from '
                             '(default 5)')
    parser.add_argument('--json', default='bench-scale-results.json',
                        help='where to write every sample (default '
                             'bench-scale-results.json)')
    runtime.add_harness_arguments(parser)
    args = parser.parse_args(argv)
    runtime.patch(args.concurrency)

    from oslo_utils import units

    from bootcache_testkit.harness import cinder_process
    from bootcache_testkit.harness import session

    virtual = args.virtual_mib * units.Mi
    print('bench-scale: %d MiB raw images (%d MiB data), 1 GiB volumes, '
          '%d rounds, entries (b) %d, plain images (c) %d, cinder-volume '
          'under %s; load average %s' % (
              args.virtual_mib, args.data_mib, args.rounds, args.entries,
              args.plain, args.concurrency, _load()), flush=True)
    samples: list[dict] = []
    setup: dict[str, float] = {}
    workers: dict = {}
    loads = {'start': _load()}
    specs = [session.BackendSpec(config, cinder_process.OUR_DRIVER,
                                 {'pool': POOLS[config]})
             for config in CONFIGS]
    with session.cinder_session(
            specs, workdir=args.workdir, virtual_size=virtual,
            data_bytes=args.data_mib * units.Mi,
            memstore_bytes=args.memstore_gib * units.Gi,
            concurrency=args.concurrency, debug=args.debug,
            pools=tuple(POOLS.values()) + ('images',)) as s:
        workdir = os.path.dirname(s.process.workdir)
        s.runner.disk('raw')
        clis = {config: CLI(s, os.path.join(workdir, 'cli-' + config),
                            POOLS[config]) for config in CONFIGS}
        # Each pool's first entry is populated through Cinder's flow: it
        # is the entry every timed hit of that pool clones.
        hit_meta = s.runner.image('raw', 'file', shared=False)
        for config in CONFIGS:
            first = s.runner.create(s.backends[config], 'populate', hit_meta)
            if not (first.ok and first.downloads == 1):
                raise RuntimeError('the first population failed: %s'
                                   % (first,))
        s.process.join_finishers()
        setup = _fill_pools(s.sandbox, args, virtual)
        for config in CONFIGS:
            # Untimed: the first reader after a change of the pool pays
            # nothing the timed ones do not (the index is complete), and
            # the OSD has settled after the fill.
            backend = s.backends[config]
            _maintain(backend, max_entries=5000)
            _hit(s, backend, hit_meta)
            _population(s, backend)
        loads['measured'] = _load()
        for round_no in range(1, args.rounds + 1):
            # Round by round through the three pools: a change of the
            # machine's load hits every configuration alike.
            for config in CONFIGS:
                samples += _round(config, round_no, s, s.backends[config],
                                  clis[config], hit_meta, args.creates,
                                  args.maintains)
        print('  %d cinder-volume processes x %d new images in pool (c), '
              'released at once ...' % (args.workers, args.worker_images),
              flush=True)
        workers = _workers(s, os.path.join(workdir, 'workers'),
                           args.workers, args.worker_images)
        loads['end'] = _load()
        s.runner.images.delete(hit_meta['id'])
    ok = all(x['ok'] for x in samples) and workers.get('ok', False)
    _report(samples, setup, workers, loads, args)
    return 0 if ok else 1


def _load() -> str:
    return ' '.join('%.2f' % x for x in os.getloadavg())


def _report(samples: list[dict], setup: dict, workers: dict, loads: dict,
            args: Any) -> None:
    def median(config: str, measure: str) -> float:
        return _median([x['seconds'] for x in samples
                        if (x['config'], x['measure']) == (config, measure)])

    summary = {config: {measure: median(config, measure)
                        for measure, _label in MEASURES}
               for config in CONFIGS}
    print()
    print('median of %d rounds (creates: %d samples, maintain(): %d), '
          'seconds; (a) 1 entry, (b) %d entries, (c) %d entries + %d plain '
          'RBD images' % (args.rounds, args.rounds * args.creates,
                          args.rounds * args.maintains, args.entries,
                          args.entries, args.plain))
    print('%-44s %8s %8s %8s %8s %8s' % ('measure', '(a)', '(b)', '(c)',
                                         '(b)/(a)', '(c)/(b)'))
    for measure, label in MEASURES:
        a, b, c = (summary[config][measure] for config in CONFIGS)
        print('%-44s %8.3f %8.3f %8.3f %7.2fx %7.2fx' % (
            label, a, b, c, b / a, c / b))

    def seen(config: str, measure: str, key: str) -> str:
        return '/'.join(sorted({str(x.get(key)) for x in samples
                               if (x['config'], x['measure']) ==
                               (config, measure)}))
    print('%-44s %8s %8s %8s' % (('entries seen by maintain()',) + tuple(
        seen(config, 'maintain-limits', 'entries') for config in CONFIGS)))
    print('%-44s %8s %8s %8s' % (('rows of list -f json',) + tuple(
        seen(config, 'cli-list', 'rows') for config in CONFIGS)))
    print('set-up: %d entries made directly in %.1f s (b) and %.1f s (c), '
          '%d plain RBD images in %.1f s (%d threads)' % (
              args.entries - 1, setup.get('entries-b', float('nan')),
              setup.get('entries-c', float('nan')), args.plain,
              setup.get('plain', float('nan')), args.threads))
    print('load average (1, 5, 15 min): %s' % '; '.join(
        '%s %s' % item for item in loads.items()))
    goals = []
    for goal, measured, compared, most in GOALS:
        value = summary[measured[0]][measured[1]]
        if compared:
            value /= summary[compared[0]][compared[1]]
        goals.append(dict(goal=goal.format(entries=args.entries),
                          measured=measured, compared=compared,
                          value=value, allowed=most, met=value <= most))
    print()
    print('%-48s %7s %8s %4s' % ('goal', 'value', 'allowed', 'met'))
    for goal in goals:
        print('%-48s %7.3f %8.3f %4s' % (goal['goal'], goal['value'],
                                         goal['allowed'],
                                         'yes' if goal['met'] else 'NO'))
    if workers:
        print()
        print('%d cinder-volume processes x %d new images at once: '
              'downloads per image %s, wall %.1f s (release to last '
              'report, each worker\'s read-back included; start-up %.1f '
              's), creates per process %s s, %d/%d volumes verified, '
              'clone parents %s: %s' % (
                  workers['workers'], workers['images'],
                  sorted(workers['downloads'].values()),
                  workers['wall_seconds'], workers['startup_seconds'],
                  ', '.join('%.1f' % x for x in workers['create_seconds']
                            if x is not None),
                  workers['verified'], workers['volumes'],
                  'right' if workers['parents_right'] else 'WRONG',
                  'ok' if workers['ok'] else 'FAILED'))
    failed = [x for x in samples if not x['ok']]
    if failed:
        print('FAILED samples: %s' % failed)
    with open(args.json, 'w') as f:
        json.dump({'args': vars(args), 'summary': summary, 'goals': goals,
                   'setup_seconds': setup, 'workers': workers,
                   'load_average': loads, 'samples': samples}, f, indent=2,
                  default=str)
    print('samples written to %s' % args.json)


if __name__ == '__main__':
    sys.exit(main())
