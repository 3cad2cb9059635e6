"""``cinder-rbd-bootcache`` against the sandbox, every subcommand, as an
operator runs it: a separate process reading a cinder.conf the test
writes, output checked in ``-f json``.  ``warm`` gets its images from the
harness's Glance stand-in (``harness/cli.py``); the rest is the real
command."""

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest

from bootcache_testkit.harness import cli as harness_cli
from bootcache_testkit.harness import misconfig
from cinder_rbd_bootcache.bootcache import catalog
from tests.functional import conftest


@pytest.fixture
def cli(clean_cinder, entries, tmp_path):
    """Run the command; returns (exit code, parsed stdout or text, stderr)."""
    conversion = tmp_path / 'conversion'
    conversion.mkdir()
    conf = harness_cli.write_conf(str(tmp_path / 'cinder.conf'),
                                  clean_cinder.sandbox, str(conversion))
    export = str(tmp_path / 'glance.json')

    def run(*args, conf_path=conf, json_output=True):
        clean_cinder.process.image_service.export(export)
        command = [sys.executable, '-m', 'bootcache_testkit.harness.cli',
                   export, '--config-file', conf_path] + list(args)
        if json_output:
            command += ['-f', 'json']
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=300)
        out = done.stdout
        if json_output and done.returncode == 0 or out.startswith(('[',
                                                                  '{')):
            out = json.loads(out)
        return done.returncode, out, done.stderr
    run.tmp_path = tmp_path
    return run


def _one(rows, image_id):
    (row,) = [r for r in rows if r['Image ID'] == image_id]
    return row


def test_list_show_stats_verify(clean_cinder, boot_cache_backend, cli):
    runner = clean_cinder.runner
    meta = runner.image('raw', 'file', shared=False)
    try:
        assert runner.create(boot_cache_backend, 'miss', meta).ok
        assert runner.create(boot_cache_backend, 'hit', meta).ok
    finally:
        runner.images.delete(meta['id'])
    boot_cache_backend.join_finishers()

    code, rows, err = cli('list')
    assert code == 0, err
    row = _one(rows, meta['id'])
    # From the index: clones are counted only by --long.
    assert 'Clones' not in row
    assert (row['State'], row['Hits'], row['Size'],
            row['Virtual Size']) == ('ready', 1, meta['size'],
                                     meta['virtual_size'])
    assert 0 < row['Bytes Used'] <= meta['virtual_size']
    assert row['Created'] <= row['Last Used']
    code, long_rows, err = cli('list', '--long')
    assert code == 0, err
    assert _one(long_rows, meta['id']) == dict(row, Clones=0)

    code, fields, err = cli('show', meta['id'])
    assert code == 0, err
    assert (fields['RBD Image'], fields['Snapshot'], fields['Pool']) == (
        catalog.entry_name(meta['id']), catalog.SNAPSHOT, 'volumes')
    assert fields['Os Hash Value'] == meta['os_hash_value']

    code, figures, err = cli('stats')
    assert code == 0, err
    assert (figures['Entries'], figures['Hits'], figures['Misses'],
            figures['Hit Rate'], figures['Downloads Avoided']) == (
        1, 1, 1, 0.5, 1)
    assert figures['Time Saved Seconds'] >= 0
    assert figures['Bytes'] == row['Bytes Used']

    code, rows, err = cli('verify')
    assert code == 0, err
    assert [(r['Image ID'], r['Result']) for r in rows] == [
        (meta['id'], 'ok')]

    # What the entry recorded no longer matches its bytes.
    with conftest.pool_catalog(clean_cinder) as found:
        import rbd
        with rbd.Image(found.ioctx, catalog.entry_name(meta['id'])) as image:
            image.metadata_set(catalog.META + 'os_hash_value', '0' * 128)
    code, rows, err = cli('verify', meta['id'])
    assert code == 1
    assert _one(rows, meta['id'])['Result'] == 'MISMATCH'
    assert 'do not match their recorded hash' in err

    code, out, err = cli('show', 'no-such-image', json_output=False)
    assert code == 1
    assert err.strip().splitlines() == [
        'no boot-cache entry for image no-such-image in pool volumes (see '
        '"cinder-rbd-bootcache list")']


def test_warm_populates_once_and_the_next_create_clones(
        clean_cinder, boot_cache_backend, cli):
    runner = clean_cinder.runner
    qcow2 = runner.image('qcow2', 'file', shared=False)
    try:
        code, rows, err = cli('warm', qcow2['id'], 'missing-image')
        assert code == 1
        assert _one(rows, qcow2['id'])['Result'] == 'cached'
        failed = _one(rows, 'missing-image')['Result']
        assert failed.startswith('failed: Glance could not show the image')
        # Said once, in the table; the log line is for -v.
        assert 'missing-image' not in err
        with open(cli.tmp_path / 'downloads.json') as f:
            assert json.load(f) == {qcow2['id']: 1}
        # Not a terminal: plain progress lines, no carriage returns.
        assert '\r' not in err and qcow2['id'] + ' [' in err

        code, rows, err = cli('warm', qcow2['id'])
        assert (code, rows[0]['Result']) == (0, 'already cached'), err

        # A converted entry is checked against the hash recorded at build.
        code, rows, err = cli('verify', qcow2['id'])
        assert (code, rows[0]['Result']) == (0, 'ok'), err

        outcome = runner.create(boot_cache_backend, 'after warm', qcow2)
        assert outcome.ok and outcome.downloads == 0, outcome
        assert outcome.parent == 'volumes/%s@%s' % (
            catalog.entry_name(qcow2['id']), catalog.SNAPSHOT)
    finally:
        runner.images.delete(qcow2['id'])
    code, figures, err = cli('stats')
    # Warming counts neither a hit nor a miss; the create was a hit.
    assert (figures['Hits'], figures['Misses']) == (1, 0), err


def test_warm_leaves_images_that_creates_clone_from_glance(
        clean_cinder, boot_cache_backend, cli):
    """A raw image in Glance's rbd store: creates clone Glance's snapshot
    (the driver's first path), so warm downloads nothing and makes no
    entry.  Where the driver's rules refuse the location (a pool outside
    bootcache_allowed_clone_pools), creates use the cache: it is warmed."""
    runner = clean_cinder.runner
    meta = runner.image('raw', 'rbd', shared=False)
    snapshot = 'images/%s@snap' % meta['id']
    try:
        outcome = runner.create(boot_cache_backend, 'clone', meta)
        assert (outcome.ok, outcome.parent, outcome.downloads) == (
            True, snapshot, 0), outcome

        code, rows, err = cli('warm', meta['id'])
        assert code == 0, err
        assert rows[0]['Result'] == (
            'not cached: cloned from Glance\'s rbd store (%s)' % snapshot)
        with open(cli.tmp_path / 'downloads.json') as f:
            assert json.load(f) == {}
        code, rows, err = cli('list')
        assert (code, rows) == (0, []), err

        elsewhere = harness_cli.write_conf(
            str(cli.tmp_path / 'elsewhere.conf'), clean_cinder.sandbox,
            str(cli.tmp_path / 'conversion'),
            bootcache_allowed_clone_pools='glance-elsewhere')
        code, rows, err = cli('warm', meta['id'], conf_path=elsewhere)
        assert (code, rows[0]['Result']) == (0, 'cached'), err
        with open(cli.tmp_path / 'downloads.json') as f:
            assert json.load(f) == {meta['id']: 1}
    finally:
        runner.images.delete(meta['id'])


def test_evict_by_id_all_and_policy(clean_cinder, boot_cache_backend, cli,
                                    clone_format_1):
    runner = clean_cinder.runner
    a, b, c = [runner.image('raw', 'file', shared=False) for _ in range(3)]
    try:
        # The first create of a populates its entry (and is no clone);
        # the kept second one is a clone of it.
        assert runner.create(boot_cache_backend, 'a', a).ok
        kept = runner.create(boot_cache_backend, 'a', a, keep=True)
        assert kept.ok and kept.parent, kept
        for meta in (b, c):
            assert runner.create(boot_cache_backend, 'x', meta).ok
        boot_cache_backend.join_finishers()

        code, rows, err = cli('evict', a['id'], b['id'])
        assert code == 0, err
        assert _one(rows, a['id'])['Result'] == 'kept'  # clone format 1
        assert 'clone format 1' in _one(rows, a['id'])['Reason']
        assert _one(rows, b['id'])['Result'] == 'removed'
        code, rows, err = cli('list')
        assert code == 0, err
        assert 'Clones' not in rows[0]  # only --long reads clone counts
        assert [(r['Image ID'], r['State']) for r in rows] == sorted(
            [(a['id'], 'kept'), (c['id'], 'ready')])
        code, fields, err = cli('show', a['id'])
        assert (code, fields['State'], fields['Clones']) == (0, 'kept', 1)
        assert fields['Kept Reason'] == 'evicted by an operator'
        code, out, err = cli('evict', a['id'], json_output=False)
        assert code == 1 and 'evicted already and is kept' in err

        code, out, err = cli('evict', json_output=False)
        assert code == 1 and 'pass --policy or --all' in err
        # No limit set: said, naming the options; the clone still lives.
        code, rows, err = cli('evict', '--policy')
        assert (code, rows) == (0, []), err
        assert 'No limit is set: bootcache_max_size_gb' in err

        # The limits come from cinder.conf, as for cinder-volume.
        limited = harness_cli.write_conf(
            str(cli.tmp_path / 'limited.conf'), clean_cinder.sandbox,
            str(cli.tmp_path / 'conversion'), bootcache_max_entries=1)
        boot_cache_backend.delete_all()
        code, rows, err = cli('evict', '--policy', conf_path=limited)
        assert code == 0, err
        # c is within the limit.  a's clone is gone, so a goes: here, or
        # already in the stats refresh the in-process cinder-volume ran
        # after deleting the clone (another host, for this command).
        assert [(r['Image ID'], r['Result']) for r in rows] in (
            [], [(a['id'], 'removed')])
        assert 'Every limit holds' in err
        code, rows, err = cli('list')
        assert [(r['Image ID'], r['State']) for r in rows] == [
            (c['id'], 'ready')]

        code, rows, err = cli('evict', '--all')
        assert code == 0 and [r['Result'] for r in rows] == ['removed']
        code, rows, err = cli('list')
        assert rows == []
    finally:
        for meta in (a, b, c):
            runner.images.delete(meta['id'])


def test_doctor(clean_cinder, cli):
    code, rows, err = cli('doctor')
    assert code == 0, err
    results = {}
    for row in rows:
        results.setdefault(row['Check'], []).append(row['Result'])
    assert [(r['Check'], r['Result']) for r in rows][2:8] == [
        ('rbd_ceph_conf', 'ok'), ('keyring', 'ok'), ('monitors', 'ok'),
        ('authentication', 'ok'), ('caps', 'ok'), ('rbd_pool', 'ok')]
    assert results['rbd_pool'] == ['ok'] and results['bootcache_pool'] == [
        'ok']
    # The sandbox's min compat client is luminous: clone format 1, unless
    # BOOTCACHE_SANDBOX_MIN_COMPAT says mimic or newer.
    assert results['clone format 2'] == [
        'warning' if conftest.default_clone_format(clean_cinder) == 1
        else 'ok']
    assert results['image_conversion_dir'] == ['ok']
    assert results['populations'] == ['ok']
    # The sandbox's cinder.conf has no [glance] credentials (no Glance).
    assert results['glance locations'] == ['warning']

    # A half-built entry nobody is building: recorded, then created, as
    # a builder does, which then died.
    with conftest.pool_catalog(clean_cinder) as found:
        import rbd
        name = catalog.building_name('abandoned', 'dead')
        found.add_half_built(name)
        rbd.RBD().create(found.ioctx, name, 4 << 20)
    not_a_dir = cli.tmp_path / 'a-file'
    not_a_dir.write_text('')
    broken = harness_cli.write_conf(
        str(cli.tmp_path / 'broken.conf'), clean_cinder.sandbox,
        str(not_a_dir / 'conversion'),
        bootcache_allowed_clone_pools='images,volumes')
    code, rows, err = cli('doctor', conf_path=broken)
    assert code == 1
    by_check = {}
    for row in rows:
        by_check.setdefault(row['Check'], []).append(
            (row['Result'], row['Detail']))
    assert [r for r, _ in by_check['bootcache_allowed_clone_pools']] == [
        'ok', 'warning']
    assert by_check['image_conversion_dir'][0][0] == 'error'
    code, rows, err = cli('doctor')
    assert [r['Result'] for r in rows if r['Check'] == 'populations'] == [
        'warning']


def test_config_errors_are_one_line(clean_cinder, cli):
    two = harness_cli.write_conf(
        str(cli.tmp_path / 'two.conf'), clean_cinder.sandbox,
        str(cli.tmp_path / 'conversion'), backends=('ceph', 'ceph2'))
    code, out, err = cli('list', conf_path=two, json_output=False)
    assert code == 1
    assert err.strip().splitlines() == [
        'cinder.conf enables several backends (ceph, ceph2); pass '
        '--backend NAME']
    code, rows, err = cli('--backend', 'ceph2', 'list', conf_path=two)
    assert code == 0, err


@pytest.mark.skipif(
    os.environ.get('BOOTCACHE_CONCURRENCY') == 'eventlet' and
    int(importlib.metadata.version('cinder').split('.')[0]) >= 29,
    reason='the command runs under native threads whatever mode '
           'cinder-volume runs in: the native-threads cell of the same '
           'release covers it')
@pytest.mark.parametrize('name', sorted(misconfig.CASES))
def test_ceph_misconfiguration_is_one_line(clean_cinder, cli,
                                           misconfig_files, name):
    """Each Ceph setting that cannot work: the command's error is one
    line naming option and value, exit status 1; doctor names the check
    that fails first and skips the Ceph checks after it."""
    case = misconfig.CASES[name]
    sandbox = clean_cinder.sandbox
    conf = harness_cli.write_conf(
        str(cli.tmp_path / 'misconfigured.conf'), sandbox,
        str(cli.tmp_path / 'conversion'),
        **misconfig.options(case, sandbox, misconfig_files))
    line = misconfig.fill(case.line, sandbox, misconfig_files)
    code, out, err = cli('stats', conf_path=conf, json_output=False)
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith(line), err

    code, rows, err = cli('doctor', conf_path=conf)
    assert code == 1
    ceph_checks = [(r['Check'], r['Result']) for r in rows
                   if r['Check'] not in ('volume_driver', 'glance locations',
                                         'image_conversion_dir')]
    checks = [c for c, _r in ceph_checks]
    failed = checks.index(case.check)
    assert [r for _c, r in ceph_checks] == (
        ['ok'] * failed + ['error'] + ['skipped'] * (
            len(checks) - failed - 1)), rows
    (detail,) = [r['Detail'] for r in rows if r['Result'] == 'error']
    assert detail.startswith(line)
    assert checks[-2:] == ['rbd_pool', 'bootcache_pool']
