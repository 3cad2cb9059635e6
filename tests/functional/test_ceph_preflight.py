"""cinder-volume starting our driver on Ceph settings that cannot work:
``VolumeManager.init_host`` (do_setup, check_for_setup_error) leaves the
driver uninitialised, and the driver's log says why in one line naming
option and value, without upstream's connection retries."""

import logging

import pytest

from bootcache_testkit.harness import cinder_process
from bootcache_testkit.harness import misconfig


def _start(process, name, options, tmp_path=None):
    """A cinder-volume backend ``name`` with ``options``, started as
    cinder-volume starts it; its manager.  ``rbd_keyring_conf``, which
    Cinder does not register, goes into a cinder.conf in ``tmp_path``
    that cinder-volume was started with (``config_file``)."""
    from oslo_config import cfg

    from cinder import context
    from cinder import objects
    from cinder.volume import manager as volume_manager

    options = dict(options)
    config_files = []
    if 'rbd_keyring_conf' in options:
        path = tmp_path / 'cinder.conf'
        path.write_text('[%s]\nrbd_keyring_conf = %s\n' % (
            name, options.pop('rbd_keyring_conf')))
        config_files = [str(path)]
    backend = object.__new__(cinder_process.BackendUnderTest)
    backend.process, backend.name, backend.pool = process, name, 'volumes'
    backend._register_options(cinder_process.OUR_DRIVER, options)
    host = '%s@%s' % (cinder_process.HOST, name)
    service = objects.Service(
        context.get_admin_context(), host=host, binary='cinder-volume',
        topic='cinder-volume',
        rpc_current_version=volume_manager.VolumeManager.RPC_API_VERSION,
        object_current_version=objects.base.OBJ_VERSIONS.get_current())
    service.create()
    manager = volume_manager.VolumeManager(host=host, service_name=name)
    # cinder-volume tries a failed driver again reinit_driver_count times,
    # sleeping 1, 2, 4 s; once shows the same.
    cfg.CONF.set_override('reinit_driver_count', 0)
    cfg.CONF.set_override('config_file', config_files)
    try:
        manager.init_host(service_id=service.id)
    finally:
        cfg.CONF.clear_override('reinit_driver_count')
        cfg.CONF.clear_override('config_file')
    return manager


@pytest.mark.parametrize('name', sorted(misconfig.CASES))
def test_driver_start_up_names_the_setting(cinder, misconfig_files, caplog,
                                           tmp_path, name):
    case = misconfig.CASES[name]
    backend = 'misconfig_%s' % name.replace(' ', '_').replace('-', '_')
    caplog.set_level(logging.INFO)
    manager = _start(cinder.process, backend,
                     misconfig.options(case, cinder.sandbox, misconfig_files),
                     tmp_path)
    assert not manager.driver.initialized
    line = misconfig.fill(case.line, cinder.sandbox, misconfig_files)
    ours = [r.getMessage() for r in caplog.records
            if r.name == 'cinder_rbd_bootcache.upstream.rados_setup']
    assert len(ours) == 1 and ours[0].startswith(
        'Backend %s cannot use Ceph: %s' % (backend, line)), ours
    assert '\n' not in ours[0]
    # Ceph answered (or, for the monitors, did not) once: upstream's
    # connection, with its retries, never ran.
    assert not [r for r in caplog.records
                if 'Error connecting to ceph cluster' in r.getMessage()]


def test_driver_starts_on_good_settings(cinder, caplog):
    caplog.set_level(logging.INFO)
    manager = _start(cinder.process, 'preflight_ok', {})
    assert manager.driver.initialized
    assert not [r for r in caplog.records
                if r.name.startswith('cinder_rbd_bootcache.') and
                r.levelno >= logging.WARNING]
