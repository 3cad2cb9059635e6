"""Cinder's ``image_volume_cache.*`` notifications from the boot cache,
through the real flow: Cinder's rpc initialised with notifications on
(oslo.messaging's in-memory ``test`` driver on the ``fake://``
transport), creates that miss and hit, and an eviction by the limits."""

import pytest

from bootcache_testkit.harness import cinder_process
from tests.functional import conftest


@pytest.fixture
def sent(clean_cinder):
    """What Cinder's notifier sent during the test, with notifications
    on as an operator turns them on ([oslo_messaging_notifications]
    driver); Cinder's rpc is initialised again, off, afterwards."""
    from cinder import rpc
    from oslo_config import cfg
    from oslo_messaging.notify import _impl_test

    def restart_rpc():
        rpc.cleanup()
        rpc.init(cfg.CONF)
    cfg.CONF.set_override('driver', ['test'],
                          group='oslo_messaging_notifications')
    restart_rpc()
    _impl_test.reset()
    try:
        yield lambda: [
            (message['event_type'], message['publisher_id'],
             message['payload'])
            for _ctxt, message, _priority, _retry
            in _impl_test.NOTIFICATIONS
            if message['event_type'].startswith('image_volume_cache.')]
    finally:
        cfg.CONF.clear_override('driver',
                                group='oslo_messaging_notifications')
        restart_rpc()
        _impl_test.reset()


@pytest.fixture
def max_entries(boot_cache_backend):
    from oslo_config import cfg
    cfg.CONF.set_override('bootcache_max_entries', 1,
                          group=boot_cache_backend.name)
    yield
    cfg.CONF.clear_override('bootcache_max_entries',
                            group=boot_cache_backend.name)


def test_miss_hit_and_evict_as_cinders_cache_sends_them(
        clean_cinder, boot_cache_backend, entries, sent, max_entries):
    runner = clean_cinder.runner
    backend = boot_cache_backend
    a, b = [runner.image('raw', 'file', shared=False) for _ in range(2)]
    try:
        outcomes = [runner.create(backend, 'miss', a)]
        backend.join_finishers()
        outcomes.append(runner.create(backend, 'hit', a))
        # Over bootcache_max_entries once b's entry is finished: a goes.
        outcomes.append(runner.create(backend, 'miss, evicts a', b))
        backend.join_finishers()
    finally:
        for meta in (a, b):
            runner.images.delete(meta['id'])
    assert [o.ok for o in outcomes] == [True] * 3, outcomes
    assert entries() == [conftest.catalog.entry_name(b['id'])]
    # The volumes' host@backend#pool, as Cinder's cache names them.
    host = '%s#%s' % (backend.host, backend.name)
    publisher = 'volume.%s' % cinder_process.HOST
    assert sent() == [
        ('image_volume_cache.miss', publisher,
         {'image_id': a['id'], 'host': host}),
        ('image_volume_cache.hit', publisher,
         {'image_id': a['id'], 'host': host}),
        ('image_volume_cache.miss', publisher,
         {'image_id': b['id'], 'host': host}),
        ('image_volume_cache.evict', publisher,
         {'image_id': a['id'], 'host': host}),
    ]
