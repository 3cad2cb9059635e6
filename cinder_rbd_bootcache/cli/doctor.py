"""``doctor``: check a backend's setup and say what to fix.

Each check returns rows of (check, result, detail) with result ``ok``,
``warning``, ``error`` or ``skipped`` (a Ceph check after the first that
failed: it depends on it); the command exits 1 if any row is an error.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any
from typing import Iterator

from cliff import lister

from cinder_rbd_bootcache.bootcache import catalog as catalog_mod
from cinder_rbd_bootcache.bootcache import format_version
from cinder_rbd_bootcache.bootcache import lock as lock_mod
from cinder_rbd_bootcache.cli import backend as backend_mod
from cinder_rbd_bootcache.cli import glance_locations
from cinder_rbd_bootcache.image_import import progress

OK, WARNING, ERROR, SKIPPED = 'ok', 'warning', 'error', 'skipped'
#: Ceph releases in order, for require_min_compat_client.
RELEASES = ('jewel', 'kraken', 'luminous', 'mimic', 'nautilus', 'octopus',
            'pacific', 'quincy', 'reef', 'squid', 'tentacle')

Row = tuple[str, str, str]


def clone_format_row(min_compat_client: str,
                     default_clone_format: str) -> Row:
    """Whether evicted entries with clones can wait in the RBD trash."""
    if default_clone_format == '1':
        return ('clone format 2', WARNING,
                'rbd_default_clone_format is 1 for the driver\'s client: '
                'entries with clones are kept when evicted; set it to 2 or '
                'auto')
    if default_clone_format == '2' or (
            min_compat_client in RELEASES and
            RELEASES.index(min_compat_client) >= RELEASES.index('mimic')):
        return ('clone format 2', OK,
                'new clones are format 2 (require_min_compat_client %s, '
                'rbd_default_clone_format %s): evicted entries with clones '
                'wait in the RBD trash' % (min_compat_client,
                                           default_clone_format))
    return ('clone format 2', WARNING,
            'require_min_compat_client is %s: clones are format 1, so an '
            'evicted entry with clones is kept until they are gone; with '
            'every client mimic or newer run "ceph osd '
            'set-require-min-compat-client mimic"' % min_compat_client)


def format_row(verdict: format_version.Verdict) -> Row:
    """Whether this host may use the pool's boot cache, by its format."""
    if not verdict.usable:
        return ('boot-cache format', ERROR, verdict.problem())
    return ('boot-cache format', OK,
            'the boot cache in pool %s is in format %s; this host reads '
            'and writes formats %d to %d'
            % (verdict.pool, verdict.shown(), format_version.UNVERSIONED,
               format_version.FORMAT))


def conversion_dir_row(path: str, free_bytes: int, writable: bool,
                       why: str = '') -> Row:
    if not writable:
        return ('image_conversion_dir', ERROR,
                'cannot write in %s (%s): qcow2 and other converted images '
                'cannot be staged; fix its owner or set '
                'image_conversion_dir' % (path, why))
    return ('image_conversion_dir', OK,
            '%s writable, %s free (a converted image needs its own '
            'size there; raw images need none)'
            % (path, progress.human(free_bytes)))


class Doctor(lister.Lister):
    """Check the backend's setup and name the first thing to fix.

    In order: cinder.conf's Ceph settings (ceph.conf, keyring, monitors,
    authentication, caps, pools), the clone format, the clone source
    pools, image_conversion_dir, the boot cache's format (whether this
    host knows it), stuck populations, and whether Glance tells
    cinder-volume's [glance] user where images are stored.
    """

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--image', metavar='IMAGE_ID',
            help='the Glance image whose locations the location check '
                 'asks for (default: the first image the [glance] user '
                 'sees)')
        return parser

    def take_action(self, parsed_args: Any) -> tuple:
        backend = self.app.backend
        rows = list(self._config(backend))
        rows.append(glance_locations.check(
            backend.conf, getattr(parsed_args, 'image', None)))
        ceph_ok = self._preflight(backend, rows)
        if ceph_ok:
            driver = backend.driver()
            driver.check_for_setup_error()
            rows += self._ceph(backend, driver)
        rows.append(self._conversion_dir(backend))
        if ceph_ok:
            verdict = backend.format()
            rows.append(format_row(verdict))
            if not verdict.usable:
                ceph_ok = False
                rows.append(('populations', SKIPPED, 'not checked: the '
                             'boot cache\'s format is not known here'))
        if ceph_ok:
            try:
                rows += self._populations(backend)
            except Exception as exc:
                rows.append(('populations', ERROR, 'cannot list the entries '
                             'in pool %s: %s' % (backend.pool, exc)))
        self.errors = sum(r[1] == ERROR for r in rows)
        return ('Check', 'Result', 'Detail'), rows

    def run(self, parsed_args: Any) -> int:
        result = super().run(parsed_args)
        return 1 if self.errors else result

    @staticmethod
    def _config(backend: Any) -> Iterator[Row]:
        if backend.volume_driver != backend_mod.OUR_DRIVER:
            yield ('volume_driver', WARNING,
                   '[%s] volume_driver is %s, not %s: cinder-volume does not '
                   'use the boot cache here' % (backend.name,
                                                backend.volume_driver,
                                                backend_mod.OUR_DRIVER))
        else:
            yield 'volume_driver', OK, backend.volume_driver
        if not backend.section.bootcache_enabled:
            yield ('bootcache_enabled', WARNING,
                   'off: images without a usable location are downloaded '
                   'for every volume')

    @staticmethod
    def _preflight(backend: Any, rows: list[Row]) -> bool:
        """``ceph_preflight``'s checks in order, a row each; after the
        first that fails, the rest are skipped.  Whether all passed."""
        from cinder_rbd_bootcache.ceph import api as ceph
        from cinder_rbd_bootcache.ceph import preflight as ceph_preflight
        from cinder_rbd_bootcache import errors
        preflight = ceph_preflight.Preflight(ceph.rados, backend.settings())
        failed = None
        try:
            for name, check in preflight.checks():
                if failed is not None:
                    rows.append((name, SKIPPED, 'not checked: %s failed'
                                 % failed))
                    continue
                try:
                    rows.append((name, OK, check()))
                except errors.CephMisconfigured as exc:
                    rows.append((name, ERROR, str(exc)))
                    failed = name
        finally:
            preflight.close()
        return failed is None

    @staticmethod
    def _ceph(backend: Any, driver: Any) -> Iterator[Row]:
        from cinder.volume.drivers import rbd as rbd_driver
        config = driver.configuration
        volume_pools = [config.rbd_pool]
        with rbd_driver.RADOSClient(driver, config.rbd_pool) as connection:
            client = connection.cluster
            pools = set(client.list_pools())
            for pool in config.bootcache_allowed_clone_pools or []:
                if pool not in pools:
                    yield ('bootcache_allowed_clone_pools', ERROR,
                           'pool %s does not exist; Glance images in it '
                           'cannot be cloned' % pool)
                elif pool in volume_pools:
                    yield ('bootcache_allowed_clone_pools', WARNING,
                           'pool %s holds volumes: an image location '
                           'naming a volume snapshot there would be cloned '
                           '(a data leak); list only Glance\'s pools' % pool)
                else:
                    yield ('bootcache_allowed_clone_pools', OK,
                           'pool %s exists' % pool)
            yield clone_format_row(_min_compat_client(client),
                                   client.conf_get('rbd_default_clone_format'))

    @staticmethod
    def _conversion_dir(backend: Any) -> Row:
        # Cinder creates the directory when it first converts; so does
        # this check, then writes a file in it: a real test, also as root.
        path = backend.conf.image_conversion_dir
        try:
            os.makedirs(path, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            return conversion_dir_row(path, 0, False, str(exc))
        return conversion_dir_row(path, shutil.disk_usage(path).free, True)

    @staticmethod
    def _populations(backend: Any) -> Iterator[Row]:
        lease = backend.section.bootcache_lock_lease
        found_any = False
        with backend.catalog() as found:
            for info in found.entries(include_trash=False):
                if info.state != catalog_mod.BUILDING_STATE:
                    continue
                found_any = True
                held = lock_mod.PopulationLock(
                    found.ioctx, catalog_mod.lock_object(info.image_id),
                    lease, description='doctor check')
                if held.try_acquire():
                    held.release()
                    yield ('populations', WARNING,
                           '%s was left by a population that did not '
                           'finish (%s): the next stats refresh of '
                           'cinder-volume or "evict --policy" removes it'
                           % (info.name, progress.human(info.bytes_used)))
                else:
                    yield ('populations', OK, '%s is being populated now '
                           '(its lock is held)' % info.name)
        if not found_any:
            yield 'populations', OK, 'no half-built entries'


def _min_compat_client(client: Any) -> str:
    from cinder_rbd_bootcache.ceph import api as ceph
    try:
        osd_map = ceph.mon_command(client, 'osd dump')
    except ceph.MonCommandError as exc:
        return 'unknown (%s)' % exc.err
    return osd_map.get('require_min_compat_client', 'unknown')
