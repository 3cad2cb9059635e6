"""One Ceph sandbox and one in-process Cinder for the whole functional run.

Cinder's concurrency mode is chosen here, before anything imports Cinder
(BOOTCACHE_CONCURRENCY=threading|eventlet, default threading).  After every
test the volumes pool must be empty again: a test that leaves an RBD image
behind fails in teardown.
"""

import contextlib
import json

from bootcache_testkit.harness import runtime

runtime.patch()

import pytest  # noqa: E402,I100

from bootcache_testkit.harness import cinder_process  # noqa: E402
from bootcache_testkit.harness import misconfig  # noqa: E402
from bootcache_testkit.harness import session as harness_session  # noqa
from cinder_rbd_bootcache.bootcache import catalog  # noqa: E402
from cinder_rbd_bootcache.bootcache import index as entry_index  # noqa

# Backends the suite uses.  'ours' and 'ours_cache' have the boot cache
# off, so each create shows the path under test (an import, the
# image-volume cache); test_boot_cache.py has its own backend with it on.
BACKENDS = [
    harness_session.BackendSpec('ours', cinder_process.OUR_DRIVER,
                                {'bootcache_enabled': False}),
    harness_session.BackendSpec('ours_cache', cinder_process.OUR_DRIVER,
                                {'image_volume_cache_enabled': True,
                                 'bootcache_enabled': False}),
    # Upstream's RBDDriver, for tests that show where ours differs.
    harness_session.BackendSpec('upstream', cinder_process.UPSTREAM_DRIVER),
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Repeat a failure's message at the end of every captured section.

    A failing test's report prints the traceback, then thousands of lines
    of Cinder's captured DEBUG log.  CI shows only an excerpt of a failing
    test's output, which may be the end of any one captured section, so
    the message ends each of them and also comes as a section of its own.
    """
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None:
        message = 'Failure of %s (%s): %s' % (
            item.nodeid, report.when, call.excinfo.exconly())
        report.sections = [
            (title, '%s\n%s\n' % (content.rstrip('\n'), message))
            for title, content in report.sections]
        report.sections.append(('Failure', message))


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
    cinder.process.join_finishers()
    for backend in cinder.backends.values():
        leftover_rows = backend.volumes()
        backend.delete_all()
        assert not leftover_rows, 'test left volumes in the database'
    found = cinder.leftovers().get('volumes')
    assert not found, 'test left RBD images in the volumes pool: %s' % found


# The boot-cache backend of the suite (the cache on, as installed), with
# a short population lease so tests of dead holders are quick.
BOOT_CACHE_LEASE = 3


@pytest.fixture(scope='session')
def boot_cache_backend(cinder):
    backend = cinder_process.BackendUnderTest(
        cinder.process, 'bootcache', cinder_process.OUR_DRIVER,
        bootcache_lock_lease=BOOT_CACHE_LEASE)
    yield backend
    backend.delete_all()


@contextlib.contextmanager
def pool_catalog(session):
    with session.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        yield catalog.Catalog(ioctx)


@pytest.fixture
def entries(clean_cinder, boot_cache_backend):
    """Names of ready entries; after the test every entry, trashed entry,
    half-built image and counter goes (the cache keeps entries by design;
    clean_cinder then checks the pool is empty)."""
    def names():
        with pool_catalog(clean_cinder) as found:
            return sorted(e.name for e in found.entries()
                          if e.state == catalog.READY)
    yield names
    boot_cache_backend.join_finishers()
    boot_cache_backend.delete_all()
    with pool_catalog(clean_cinder) as found:
        for info in found.entries():
            if info.state == catalog.IN_TRASH:
                found.sweep_trash()
            else:
                found._remove_image(info.name)
    with clean_cinder.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        for obj in (catalog.COUNTERS_OBJECT, entry_index.OBJECT):
            with contextlib.suppress(Exception):
                ioctx.remove_object(obj)


def _client_clone_format(session, value):
    """New clones of every client use clone format ``value`` (set in the
    monitors' config database) until the test ends."""
    def config(prefix, **args):
        with session.sandbox.admin_client() as cluster:
            ret, _out, err = cluster.mon_command(json.dumps(dict(
                prefix=prefix, who='client', name='rbd_default_clone_format',
                **args)), b'')
            assert ret == 0, err
    config('config set', value=value)
    yield
    config('config rm')


@pytest.fixture
def clone_format_2(cinder):
    """New clones use clone format 2, as on a cluster whose min compat
    client is mimic or newer."""
    yield from _client_clone_format(cinder, '2')


@pytest.fixture
def clone_format_1(cinder):
    """New clones use clone format 1, as on a cluster whose min compat
    client is older than mimic (the sandbox's default, luminous; not so
    with BOOTCACHE_SANDBOX_MIN_COMPAT=mimic)."""
    yield from _client_clone_format(cinder, '1')


def default_clone_format(session):
    """The clone format librbd picks on its own ("auto") on the sandbox:
    2 once its require_min_compat_client is mimic or newer."""
    older = ('', 'jewel', 'kraken', 'luminous')
    return 1 if (session.sandbox.min_compat_client or '') in older else 2


@pytest.fixture(scope='session')
def misconfig_users(cinder):
    """The Ceph users with too narrow caps of ``harness.misconfig``."""
    misconfig.make_users(cinder.sandbox)
    yield
    misconfig.remove_users(cinder.sandbox)


@pytest.fixture
def misconfig_files(cinder, misconfig_users, tmp_path):
    """The test's directory, with the ceph.conf copies and keyring the
    cases of ``harness.misconfig`` name."""
    misconfig.write_files(cinder.sandbox, str(tmp_path))
    return str(tmp_path)
