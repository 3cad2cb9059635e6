"""rbd_max_clone_depth, every row, through the image-volume cache.

A cache miss downloads volume V and clones the cache entry E from it; a
hit makes W from E with create_cloned_volume.  So with the cache, E is one
clone deep, and the three rows of clone_policy.clone_method show on the
hit: 0 -> full copies; 2 -> W is a clone of E (depth 2); 1 -> E is at the
limit: E is flattened first, then W is a clone of E.
"""

import pytest

from bootcache_testkit.harness import cinder_process
from bootcache_testkit.harness import scenarios


@pytest.fixture(scope='module')
def depth_backends(cinder):
    backends = {limit: cinder_process.BackendUnderTest(
        cinder.process, 'cache_depth%d' % limit, cinder_process.OUR_DRIVER,
        image_volume_cache_enabled=True, bootcache_enabled=False,
        rbd_max_clone_depth=limit)
        for limit in (0, 1, 2)}
    yield backends
    for backend in backends.values():
        backend.delete_all()


def _parent(cinder, volume):
    with cinder.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        parent = scenarios.parent_of(ioctx, volume.name)
    return parent.split('/', 1)[1].split('@')[0] if parent else None


# (rbd_max_clone_depth, parent of the entry after the hit, W's parent)
ROWS = [
    (0, None, None),        # full copies all the way
    (1, None, 'entry'),     # entry flattened, then cloned
    (2, 'miss', 'entry'),   # below the limit: plain clone
]


@pytest.mark.parametrize('limit,entry_parent,hit_parent', ROWS,
                         ids=['depth0-copy', 'depth1-flatten-source',
                              'depth2-clone'])
def test_cache_hit_follows_the_depth_table(clean_cinder, depth_backends,
                                           limit, entry_parent, hit_parent):
    runner = clean_cinder.runner
    backend = depth_backends[limit]
    meta = runner.image('raw', 'file', shared=False)
    try:
        miss = runner.create(backend, 'miss', meta, keep=True)
        hit = runner.create(backend, 'hit', meta, keep=True)
        assert miss.ok and hit.ok, (miss, hit)
        assert (miss.downloads, hit.downloads) == (1, 0)
        by_id = {v.id: v for v in backend.volumes()}
        miss_volume = by_id.pop(miss.volume_id)
        hit_volume = by_id.pop(hit.volume_id)
        (entry,) = by_id.values()  # the cache's, in the internal tenant
        assert entry.project_id == cinder_process.INTERNAL_PROJECT_ID
        names = {'miss': miss_volume.name, 'entry': entry.name}
        expected = {'entry': names.get(entry_parent),
                    'hit': names.get(hit_parent)}
        actual = {'entry': _parent(clean_cinder, entry),
                  'hit': _parent(clean_cinder, hit_volume)}
        assert actual == expected
    finally:
        backend.delete_all()
        runner.images.delete(meta['id'])
    # The clean_cinder fixture then checks no RBD image (and so no
    # volume-*.deleted left by a snapshot nobody released) remains.
