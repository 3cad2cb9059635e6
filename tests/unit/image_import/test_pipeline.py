"""When a converted import removes what it read from
(``ImagePipeline._convert_now_and_later``), and the staging image's name
(``image_import.staging``).  The conversions themselves run against the
sandbox in tests/functional/test_import_pipeline.py; here qemu-img is a
recorder, and a failure of it a plain exception."""

import unittest
from unittest import mock

from cinder_rbd_bootcache.bootcache import naming
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.image_import import pipeline
from cinder_rbd_bootcache.image_import import qemu
from cinder_rbd_bootcache.image_import import sources
from cinder_rbd_bootcache.image_import import staging

SETTINGS = pipeline.Settings(
    block_size=4 << 20, writes_in_flight=8, stall_timeout=30,
    progress_interval=10, conversion_dir='/tmp', ceph_conf='/etc/ceph.conf',
    rbd_user='cinder', luks_pbkdf2_iterations=600000, luks_writers=2)
FACTS = ImageFacts(id='img', disk_format='qcow2')
VOLUME = pipeline.Target('volumes', 'volume-1', 1 << 30)
ENTRY = pipeline.Target('volumes', 'bootcache.img.building.c', 1 << 30)


class Pipeline(pipeline.ImagePipeline):
    """Records what it converts and removes; qemu-img fails on the
    targets named in ``failing``."""

    def __init__(self, failing=()):
        self.converted, self.removed = [], []
        self.failing = set(failing)

        def execute(cmd, tracker):
            if any(t.name in cmd[-1] for t in self.failing):
                raise RuntimeError('qemu-img failed')
            self.converted.append(cmd[-1].split(':')[1].split('/')[1])
        super().__init__(SETTINGS, connect=None, execute=execute)

    def remove_targets(self, targets):
        self.removed.extend(t.name for t in targets)


class ConvertNowAndLaterTest(unittest.TestCase):

    def setUp(self):
        self.cleanups = []
        self.source = sources.Source('rbd:volumes/staged', lambda: 1 << 20,
                                     'volumes/staged')
        # The source is a name only: qemu-img check is not run on it
        # (tests/unit/image_import/test_qemu.py runs it on real files).
        patcher = mock.patch.object(qemu, 'check_image')
        patcher.start()
        self.addCleanup(patcher.stop)

    def run_import(self, imports, later):
        return imports._convert_now_and_later(
            self.source, FACTS, [VOLUME], later,
            cleanup=lambda: self.cleanups.append('cleanup'))

    def test_without_later_targets_the_source_goes_at_once(self):
        imports = Pipeline()
        self.assertIsNone(self.run_import(imports, []))
        self.assertEqual((['volume-1'], ['cleanup']),
                         (imports.converted, self.cleanups))

    def test_the_source_lives_until_fill_later_ran(self):
        imports = Pipeline()
        fill_later = self.run_import(imports, [ENTRY])
        self.assertEqual(([VOLUME.name], []),
                         (imports.converted, self.cleanups))
        fill_later()
        self.assertEqual(([VOLUME.name, ENTRY.name], ['cleanup']),
                         (imports.converted, self.cleanups))

    def test_a_failed_conversion_removes_the_source(self):
        imports = Pipeline(failing=[VOLUME])
        with self.assertRaises(RuntimeError):
            self.run_import(imports, [ENTRY])
        self.assertEqual(['cleanup'], self.cleanups)

    def test_a_failed_fill_later_removes_its_targets_and_the_source(self):
        imports = Pipeline(failing=[ENTRY])
        fill_later = self.run_import(imports, [ENTRY])
        with self.assertRaises(RuntimeError):
            fill_later()
        self.assertEqual(([ENTRY.name], ['cleanup']),
                         (imports.removed, self.cleanups))


class StagingNameTest(unittest.TestCase):

    def test_a_staging_image_is_a_half_built_image_of_its_image(self):
        name = staging.staging_name('img', 'cookie')
        self.assertTrue(name.endswith(staging.SUFFIX))
        self.assertEqual(('img', naming.BUILDING_STATE),
                         naming.parse_name(name))
        # The next holder of the image's lock reaps it with the rest.
        self.assertTrue(name.startswith(
            naming.entry_name('img') + naming.BUILDING_INFIX))
        self.assertIn('boot-cache entry (building)',
                      naming.why_not_manageable(name))

    def test_unrecorded_places_differ(self):
        first = staging.Place.unrecorded('volumes', 'img')
        second = staging.Place.unrecorded('volumes', 'img')
        self.assertNotEqual(first.name, second.name)
        self.assertEqual('volumes', first.pool)


class StoreSourceTest(unittest.TestCase):
    """Which images are read from Glance's rbd store; the snapshot is
    read on the sandbox (tests/functional/test_import_pipeline.py)."""

    FSID = '6e7fedfd-ac62-412d-9369-9c059ad0ddbb'

    def pipeline(self):
        from cinder_rbd_bootcache.glance import rbd_store
        rules = rbd_store.CloneRules(
            fsid=lambda: self.FSID, volume_pools=['volumes'],
            allowed_pools=[], connect=None, binding=None)
        return pipeline.ImagePipeline(SETTINGS, connect=None,
                                      store_rules=rules)

    def service(self, get_location):
        import types
        return types.SimpleNamespace(get_location=get_location)

    def test_a_store_location_is_read_from(self):
        source = self.pipeline()._store_source(None, self.service(
            lambda context, image_id: (None, [
                {'url': 'rbd://%s/images/img/snap' % self.FSID}])), FACTS)
        self.assertEqual('images/img@snap', str(source))
        self.assertTrue(source.spec.startswith('rbd:images/img@snap:'))

    def test_unreadable_locations_mean_a_download(self):
        def refuse(context, image_id):
            raise RuntimeError('403 Forbidden')
        self.assertIsNone(self.pipeline()._store_source(
            None, self.service(refuse), FACTS))
        # An answer that is not (direct_url, locations).
        self.assertIsNone(self.pipeline()._store_source(
            None, self.service(lambda context, image_id: object()), FACTS))

    def test_without_rules_or_locations_nothing_is_read(self):
        plain = pipeline.ImagePipeline(SETTINGS, connect=None)
        self.assertIsNone(plain._store_source(None, self.service(
            lambda context, image_id: self.fail('asked')), FACTS))
        self.assertIsNone(self.pipeline()._store_source(None, object(),
                                                        FACTS))
