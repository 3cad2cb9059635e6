"""A backend going back from BootCacheRBDDriver to upstream's RBDDriver,
as doc/source/upgrades.rst tells an operator to do it.

Volumes are made from an image by our driver through Cinder's real flow
(clones of the image's boot-cache entry, and an encrypted one, which is
a copy); then the same backend section is restarted with
``volume_driver = cinder.volume.drivers.rbd.RBDDriver`` on the same
pools, and upstream's driver deletes, extends, snapshots, clones, makes a
volume from a snapshot of, and backs up those volumes.  ``drain`` (the real
command, in its own process) removes the entries nothing depends on and
lists the rest with their dependents; once the last dependent is gone it
leaves nothing.  A backup is made and restored by cinder-backup's Ceph
driver in this process (``harness/backups.py``: the volume handed to it
as os-brick's RBD connector does, without the backup manager's RPC).
"""

import json
import os
import subprocess
import sys

from oslo_utils import units
import pytest

from bootcache_testkit.harness import backups
from bootcache_testkit.harness import cinder_process
from bootcache_testkit.harness import cli as harness_cli
from bootcache_testkit.harness import verify
from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.cli import drain as drain_cli


@pytest.fixture
def backend(cinder, entries):
    """A backend of our driver, with the boot cache on, of its own (it
    is restarted with upstream's driver).  ``entries`` removes whatever
    entry the test leaves, should it fail."""
    made = cinder_process.BackendUnderTest(
        cinder.process, 'wayback', cinder_process.OUR_DRIVER,
        bootcache_lock_lease=3)
    yield made
    for snapshot in _snapshots_of(made):
        made.delete_snapshot(snapshot)
    made.delete_all()
    # Upstream's delete renames a volume whose snapshot has a clone
    # (volume-*.deleted): after a failure part-way, such a rename can be
    # left, and it would hold its entry (which ``entries`` removes next).
    _rbd(cinder, _remove_renamed_volumes)


def _remove_renamed_volumes(rbd, ioctx):
    """Remove every ``volume-*.deleted`` image, its snapshots first, as
    upgrades.rst tells an operator to."""
    for name in rbd.RBD().list(ioctx):
        if name.startswith('volume-') and name.endswith('.deleted'):
            _remove_with_snapshots(rbd, ioctx, name)


def _remove_with_snapshots(rbd, ioctx, name):
    with rbd.Image(ioctx, name) as image:
        for snap in list(image.list_snaps()):
            if image.is_protected_snap(snap['name']):
                image.unprotect_snap(snap['name'])
            image.remove_snap(snap['name'])
    rbd.RBD().remove(ioctx, name)


def _snapshots_of(backend):
    from cinder import context
    from cinder import objects
    admin = context.get_admin_context()
    return [s for v in backend.volumes()
            for s in objects.SnapshotList.get_all_for_volume(admin, v.id)]


@pytest.fixture
def drain(cinder, tmp_path):
    """``cinder-rbd-bootcache drain`` on the backend's section, with
    upstream's driver in cinder.conf as after the switch; returns (exit
    status, rows, stderr)."""
    conversion = tmp_path / 'conversion'
    conversion.mkdir()
    conf = harness_cli.write_conf(
        str(tmp_path / 'cinder.conf'), cinder.sandbox, str(conversion),
        backends=('wayback',), driver=cinder_process.UPSTREAM_DRIVER)
    export = str(tmp_path / 'glance.json')

    def run(*args):
        cinder.process.image_service.export(export)
        done = subprocess.run(
            [sys.executable, '-m', 'bootcache_testkit.harness.cli', export,
             '--config-file', conf, 'drain', '-f', 'json'] + list(args),
            capture_output=True, text=True, timeout=300)
        rows = json.loads(done.stdout) if done.stdout.startswith('[') \
            else done.stdout
        return done.returncode, rows, done.stderr
    return run


def _by_image(rows):
    """{image id: (result, [(dependent, volume id)...])}."""
    found = {}
    for row in rows:
        result, deps = found.setdefault(row['Image ID'], (row['Result'], []))
        if row['Dependent'] != '-':
            deps.append((row['Dependent'], row['Volume ID']))
    return {k: (r, sorted(d)) for k, (r, d) in found.items()}


def _rbd(cinder, fn):
    import rbd
    with cinder.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        return fn(rbd, ioctx)


def _snapshot_names(cinder, volume):
    def names(rbd, ioctx):
        with rbd.Image(ioctx, volume.name, read_only=True) as image:
            return [snap['name'] for snap in image.list_snaps()]
    return _rbd(cinder, names)


def _holds_image(cinder, volume, raw):
    """The volume's first bytes are the image's, and its RBD size is the
    volume's."""
    def check(rbd, ioctx):
        with rbd.Image(ioctx, volume.name, read_only=True) as image:
            size = image.size()
        ok, detail = verify.volume_matches(ioctx, volume.name, raw,
                                           os.path.getsize(raw))
        return ok and size == volume.size * units.Gi, (detail, size)
    return _rbd(cinder, check)


def test_switch_back_to_upstream_and_drain(cinder, clean_cinder, backend,
                                           drain):
    runner = cinder.runner
    meta = runner.image('raw', 'file', shared=False)
    unused = runner.image('qcow2', 'file', shared=False)
    _path, raw = runner.disk('raw')
    entry = '%s/%s@%s' % ('volumes', catalog.entry_name(meta['id']),
                          catalog.SNAPSHOT)
    try:
        # Our driver: the first create populates the entry, the next
        # ones are clones of it; an encrypted one is a copy of it.
        assert runner.create(backend, 'miss', meta).ok
        assert runner.create(backend, 'miss', unused).ok  # no volume left
        backend.join_finishers()
        made = [runner.create(backend, 'hit', meta, keep=True)
                for _ in range(3)]
        assert [(m.ok, m.downloads, m.parent) for m in made] == [
            (True, 0, entry)] * 3, made
        luks = runner.create(backend, 'luks', meta, keep=True,
                             volume_type='luks-way-back')
        assert (luks.ok, luks.downloads, luks.parent) == (True, 0, None), \
            luks
    finally:
        runner.images.delete(meta['id'])
        runner.images.delete(unused['id'])
    deleted, extended, cloned = [_volume(m.volume_id) for m in made]
    encrypted = _volume(luks.volume_id)

    backend.restart(cinder_process.UPSTREAM_DRIVER)
    assert type(backend.driver).__name__ == 'RBDDriver'

    # Upstream's driver on the volumes our driver made.
    backend.delete(deleted)
    assert _rbd(cinder, lambda rbd, ioctx: deleted.name not in
                rbd.RBD().list(ioctx))
    backend.extend(extended, 2)
    assert (extended.status, extended.size) == ('available', 2)
    assert _holds_image(cinder, extended, raw)[0]
    snapshot = backend.create_snapshot(extended)
    assert snapshot.status == 'available'
    from_snapshot = backend.create_from_snapshot(snapshot)
    assert from_snapshot.ok, from_snapshot.error
    assert _holds_image(cinder, from_snapshot.volume, raw)[0]
    clone = backend.create_from_volume(cloned)
    assert clone.ok, clone.error
    assert _holds_image(cinder, clone.volume, raw)[0]
    # cinder-backup's Ceph driver: a full backup (RBD diff) of a volume
    # our driver cloned from the entry, restored into a new volume.
    ceph_backups = backups.CephBackups(cinder.process, backend)
    backup = ceph_backups.backup(cloned)
    # The RBD diff path (not a chunked copy): the snapshot it diffs the
    # next incremental backup from is on the volume.
    assert any(name.startswith('backup.%s.snap.' % backup.id)
               for name in _snapshot_names(cinder, cloned)), backup
    restored = backend.new_volume(1)
    backend.manager.create_volume(cinder.process.context(), restored,
                                  allow_reschedule=False)
    ceph_backups.restore(backup, restored)
    assert _holds_image(cinder, restored, raw)[0]
    backend.delete(restored)
    ceph_backups.delete(backup)

    code, rows, err = drain('--dry-run')
    assert code == drain_cli.ENTRIES_REMAIN, err
    assert _by_image(rows) == {
        meta['id']: ('would remain', sorted([
            ('volumes/' + cloned.name, cloned.id),
            ('volumes/' + extended.name, extended.id)])),
        unused['id']: ('would remove', [])}
    assert 'Dry run: nothing was changed.' in err
    assert 'volume_driver is still' not in err

    # An operator flattens a volume: it no longer depends on the entry.
    def flatten(rbd, ioctx):
        with rbd.Image(ioctx, extended.name) as image:
            image.flatten()
    _rbd(cinder, flatten)
    code, rows, err = drain()
    assert code == drain_cli.ENTRIES_REMAIN, err
    assert _by_image(rows) == {
        meta['id']: ('remains', [('volumes/' + cloned.name, cloned.id)]),
        unused['id']: ('removed', [])}
    assert '1 boot-cache entries remain' in err

    # Upstream deletes the rest, the encrypted volume too.  The source of
    # its clone keeps that clone's snapshot (upstream's fast delete of a
    # clone leaves it), so upstream's delete of the source renames it
    # volume-*.deleted: still a clone of the entry, listed as such.
    backend.delete(from_snapshot.volume)
    backend.delete_snapshot(snapshot)
    for volume in (clone.volume, cloned, extended, encrypted):
        backend.delete(volume)
    assert backend.volumes() == []
    leftover = cloned.name + '.deleted'
    code, rows, err = drain()
    assert code == drain_cli.ENTRIES_REMAIN, err
    assert _by_image(rows) == {
        meta['id']: ('remains', [('volumes/' + leftover, cloned.id)])}

    # What upgrades.rst says to do with it: remove it, snapshots first.
    _rbd(cinder, lambda rbd, ioctx: _remove_with_snapshots(rbd, ioctx,
                                                           leftover))
    code, rows, err = drain()
    assert code == 0, err
    assert _by_image(rows) == {meta['id']: ('removed', [])}
    assert 'No boot-cache entry remains.' in err
    code, rows, err = drain()
    assert (code, rows) == (0, []), err
    # Nothing of this test's is left: the volumes pool is empty (images
    # other tests share stay in Glance's pool until the session ends).
    assert 'volumes' not in cinder.leftovers()


def _volume(volume_id):
    from cinder import context
    from cinder import objects
    return objects.Volume.get_by_id(context.get_admin_context(), volume_id)
