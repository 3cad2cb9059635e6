"""One Ceph sandbox and one in-process Cinder for the whole functional run.

Cinder's concurrency mode is chosen here, before anything imports Cinder
(BOOTCACHE_CONCURRENCY=threading|eventlet, default threading).  After every
test the volumes pool must be empty again: a test that leaves an RBD image
behind fails in teardown.
"""

from cinder_rbd_bootcache.harness import runtime

runtime.patch()

import pytest  # noqa: E402

from cinder_rbd_bootcache.harness import flow  # noqa: E402
from cinder_rbd_bootcache.harness import session as harness_session  # noqa

# Backends the suite uses, all with our driver.
BACKENDS = [
    harness_session.BackendSpec('ours', flow.OUR_DRIVER),
    harness_session.BackendSpec('ours_cache', flow.OUR_DRIVER,
                                {'image_volume_cache_enabled': True}),
    # Upstream's RBDDriver, for tests that show where ours differs.
    harness_session.BackendSpec('upstream', flow.UPSTREAM_DRIVER),
]


@pytest.fixture(scope='session')
def cinder():
    with harness_session.cinder_session(BACKENDS, debug=True) as s:
        yield s
        leftovers = s.leftovers()
        s.runner.cleanup_images()
        assert not s.leftovers(), 'session left RBD images: %s' % leftovers


@pytest.fixture
def clean_cinder(cinder):
    """The session, checked for leftover volumes after the test."""
    yield cinder
    for backend in cinder.backends.values():
        leftover_rows = backend.volumes()
        backend.delete_all()
        assert not leftover_rows, 'test left volumes in the database'
    found = cinder.leftovers().get('volumes')
    assert not found, 'test left RBD images in the volumes pool: %s' % found
