"""Two releases of the driver on one pool: a rolling upgrade and a rollback.

An earlier release is taken from this repository's own history (the
commit that set ``VERSION`` to it), exported with ``git archive`` and run
as a second cinder-volume process (that release's
``bootcache_testkit.harness.worker``: its driver's ``clone_image`` as
Cinder's flow calls it, boot cache on, its own Glance stand-in serving
the same image bytes under the same image id) against the session's
sandbox; the current tree runs the same worker beside it.  Checked, for
each earlier release:

* both make volumes of one new image at the same moment: one download
  between them (the population lock is shared across releases) and every
  volume holds the image;
* an entry the earlier release made is cloned by the current one with no
  download (the upgrade), and an entry the current release made is cloned
  by the earlier one with no download (a host not yet upgraded, or a
  rollback);
* the current release's catalog (what ``list`` and ``stats`` read) shows
  every entry, whichever release made it; for a release that does not
  keep ``bootcache.index`` (0.4.0), once ``reindex`` has run, as the
  Upgrades page tells operators to after the last such host is
  upgraded.

Without the release's commit in the clone (a shallow clone), or without
git, the test is skipped and says why.
"""

import configparser
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import uuid

import pytest

from bootcache_testkit.harness import cli as harness_cli
from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.bootcache import format_version
from tests.functional import conftest

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
#: Earlier releases: the commit that set the version (setup.cfg) to each,
#: where that release keeps its test kit's worker, and whether it records
#: its entries in ``bootcache.index`` (0.5.0 and later do).
RELEASES = {
    '0.4.0': ('78c8a3a', 'cinder_rbd_bootcache.harness.worker', False),
    '0.5.0': ('569a7c7', 'bootcache_testkit.harness.worker', True),
}
WORKER = 'bootcache_testkit.harness.worker'
LEASE = conftest.BOOT_CACHE_LEASE


@pytest.fixture(scope='module', params=sorted(RELEASES))
def release_tree(request, tmp_path_factory):
    """(version, directory holding that release's tree, its worker,
    whether it keeps the index)."""
    version = request.param
    commit, worker, indexed = RELEASES[version]
    if shutil.which('git') is None:
        pytest.skip('git is not installed: cannot export release %s'
                    % version)
    found = subprocess.run(['git', '-C', str(REPOSITORY), 'cat-file', '-e',
                            commit + '^{commit}'], capture_output=True)
    if found.returncode != 0:
        pytest.skip('commit %s (release %s) is not in this clone' % (
            commit, version))
    directory = tmp_path_factory.mktemp('release-%s' % version)
    archive = subprocess.run(['git', '-C', str(REPOSITORY), 'archive',
                              commit], check=True, capture_output=True)
    subprocess.run(['tar', '-x', '-C', str(directory)], input=archive.stdout,
                   check=True)
    setup = configparser.ConfigParser()
    setup.read(directory / 'setup.cfg')
    assert setup['metadata']['version'] == version
    return version, str(directory), worker, indexed


class Worker:
    """One cinder-volume process of the release whose tree is ``tree``."""

    def __init__(self, session, workdir, tree, module, image_path,
                 image_id, volumes, slow_after=None):
        command = [sys.executable, '-m', module,
                   '--sandbox', session.sandbox.directory,
                   '--workdir', str(workdir), '--image', image_path,
                   '--image-id', image_id, '--volumes', str(volumes),
                   '--lease', str(LEASE)]
        if slow_after is not None:
            command += ['--slow-after', str(slow_after)]
        env = dict(os.environ, PYTHONPATH=tree)
        workdir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = workdir / 'stderr.log'
        with open(self.stderr_path, 'w') as stderr:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=stderr, text=True, cwd=tree, env=env)
        self._json()

    def _json(self):
        """The worker's next line, read as JSON; its stderr's end when it
        printed none."""
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            raise AssertionError('worker %s exited %s without a report:\n%s'
                                 % (self.process.args[2],
                                    self.process.returncode,
                                    self.stderr_path.read_text()[-3000:]))
        return json.loads(line)

    def go(self):
        self.process.stdin.write('go\n')
        self.process.stdin.flush()

    def report(self):
        report = self._json()
        assert self.process.wait(timeout=120) == 0
        return report

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def _run(workers):
    try:
        for worker in workers:
            worker.go()
        return [worker.report() for worker in workers]
    finally:
        for worker in workers:
            worker.stop()


def _golden(image_id):
    return 'volumes/%s@%s' % (catalog.entry_name(image_id), catalog.SNAPSHOT)


def test_two_releases_share_one_pool(clean_cinder, entries, release_tree,
                                     tmp_path):
    version, old_tree, old_worker, indexed = release_tree
    new_tree = str(REPOSITORY)
    modules = {old_tree: old_worker, new_tree: WORKER}
    runner = clean_cinder.runner
    path, _raw = runner.disk('raw')
    size = runner.virtual_size

    def worker(name, tree, image_id, volumes, slow_after=None):
        return Worker(clean_cinder, tmp_path / name, tree, modules[tree],
                      path, image_id, volumes, slow_after)

    # Both releases at once on a new image: one download between them.
    both = str(uuid.uuid4())
    reports = _run([worker('old-both', old_tree, both, 3, size - (8 << 20)),
                    worker('new-both', new_tree, both, 3, size - (8 << 20))])
    assert sum(r['downloads'] for r in reports) == 1, (version, reports)
    made = [v for r in reports for v in r['volumes']]
    assert all(v['cloned'] and v['matches'] for v in made), made
    assert sorted(v['parent'] or '' for v in made) == (
        [''] + [_golden(both)] * 5), made

    # The upgrade: the earlier release's entry, cloned by this one.
    upgraded = str(uuid.uuid4())
    first = _run([worker('old-first', old_tree, upgraded, 1)])[0]
    then = _run([worker('new-then', new_tree, upgraded, 1)])[0]
    assert (first['downloads'], then['downloads']) == (1, 0), (first, then)
    assert then['volumes'][0]['parent'] == _golden(upgraded), then
    assert then['volumes'][0]['matches'], then

    # The rollback: this release's entry, cloned by the earlier one.
    rolled_back = str(uuid.uuid4())
    first = _run([worker('new-first', new_tree, rolled_back, 1)])[0]
    then = _run([worker('old-then', old_tree, rolled_back, 1)])[0]
    assert (first['downloads'], then['downloads']) == (1, 0), (first, then)
    assert then['volumes'][0]['parent'] == _golden(rolled_back), then
    assert then['volumes'][0]['matches'], then

    # What list and stats read shows every entry, whoever made it.  A
    # release without the index does not record the entries it publishes
    # once the index exists: after the last host of such a release is
    # upgraded, the operator runs ``reindex`` (doc/source/upgrades.rst).
    if not indexed:
        with conftest.pool_catalog(clean_cinder) as found:
            found.reindex()
    assert entries() == sorted(catalog.entry_name(i)
                               for i in (both, upgraded, rolled_back))
    # The earlier release, which does not read the pool's format, leaves
    # the stamp this release wrote as it was.
    with conftest.pool_catalog(clean_cinder) as found:
        assert format_version.read(found.ioctx) == b'1'


def _evict_until(stop, tree, conf, image_id, runs):
    """Run ``evict IMAGE_ID`` of the release in ``tree`` again and again
    until ``stop`` is set; each run's (exit status, stdout, stderr) goes
    into ``runs``."""
    env = dict(os.environ, PYTHONPATH=tree)
    while not stop.is_set():
        done = subprocess.run(
            [sys.executable, '-m', 'cinder_rbd_bootcache.cli',
             '--config-file', conf, 'evict', image_id, '-f', 'value'],
            capture_output=True, text=True, cwd=tree, env=env, timeout=120)
        runs.append((done.returncode, done.stdout, done.stderr))


def test_evictions_by_either_release_never_fail_the_others_clones(
        clean_cinder, entries, release_tree, tmp_path):
    """Each release clones 8 volumes of an image while the other evicts
    the image's entry in a loop.  An eviction that meets clones leaves
    the entry in the trash or keeps it; one that comes between a clone's
    lookup and its clone makes that clone look up again (or populate).
    Either way every volume is made and holds the image."""
    version, old_tree, old_worker, indexed = release_tree
    new_tree = str(REPOSITORY)
    modules = {old_tree: old_worker, new_tree: WORKER}
    runner = clean_cinder.runner
    path, _raw = runner.disk('raw')
    conversion = tmp_path / 'conversion'
    conversion.mkdir()
    conf = harness_cli.write_conf(str(tmp_path / 'cinder.conf'),
                                  clean_cinder.sandbox, str(conversion),
                                  lease=LEASE)

    for cloner, evictor, label in ((new_tree, old_tree, 'old-evicts'),
                                   (old_tree, new_tree, 'new-evicts')):
        image_id = str(uuid.uuid4())
        _run([Worker(clean_cinder, tmp_path / (label + '-fill'), cloner,
                     modules[cloner], path, image_id, 1)])
        worker = Worker(clean_cinder, tmp_path / label, cloner,
                        modules[cloner], path, image_id, 8)
        stop, runs = threading.Event(), []
        evicting = threading.Thread(
            target=_evict_until, args=(stop, evictor, conf, image_id, runs))
        evicting.start()
        try:
            # The first eviction takes the entry, which has no clones:
            # the worker's first create populates it again, the others
            # clone it while the evictions go on.
            while not runs and evicting.is_alive():
                evicting.join(0.2)
            report = _run([worker])[0]
        finally:
            stop.set()
            evicting.join(180)
            worker.stop()
        made = report['volumes']
        assert len(made) == 8 and all(
            v.get('cloned') and v.get('matches') for v in made), \
            (version, label, made)
        assert len(runs) >= 2, (version, label, runs)
        for code, out, err in runs:
            # 1: the entry was not there (evicted already, or not yet
            # populated again); never a crash.
            assert code in (0, 1) and 'Traceback' not in err, \
                (version, label, code, out, err)
    if not indexed:
        # Entries 0.4.0 moved to the trash are recorded by reindex, as the
        # Upgrades page says to run once the last such host is upgraded.
        with conftest.pool_catalog(clean_cinder) as found:
            found.reindex()
