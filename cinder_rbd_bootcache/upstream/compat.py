"""Every difference between the supported Cinder releases that we meet.

Supported: cinder 26 (2025.1 Epoxy; tested with its latest point release,
26.3.0), 27.0.0 (2025.2 Flamingo), 28.0.0 (2026.1 Gazpacho) and 29.0.0
(2026.2).  This is the only module that knows which release it runs next
to; the rest of the package calls the functions here.  Each branch is
chosen by what the installed Cinder has (a function, a module), never by
parsing its version: a release that backports a change takes the new branch
by itself, and a branch goes once no supported release needs it.
``tests/unit/upstream/test_compat.py`` checks, in the unit env of each
release (tox factor ``cinderNN``), that the branch taken is the one this
docstring names for it.

Differences we adapt to (a function here each):

``tpool_wrap``
    29 added ``cinder.utils.tpool_wrap``: ``eventlet.tpool.Proxy`` under
    eventlet, the object itself under native threads.  26-28 have no such
    function (upstream's RBD driver calls ``tpool.Proxy`` directly, as their
    cinder-volume always runs under eventlet), so calling it there raises
    ``AttributeError``.  We wrap exactly as 29 does, deciding by whether
    eventlet has patched ``thread``.
``patch_concurrency`` / ``eventlet_patched`` / ``NATIVE_THREADS``
    29 has ``cinder.monkey_patch``: cinder-volume runs under eventlet unless
    ``OS_CINDER_DISABLE_EVENTLET_PATCHING`` asks for native threads.  26-28
    have no such module and no native-thread mode: ``cinder/cmd/volume.py``
    calls ``eventlet.monkey_patch()`` unconditionally (and re-points the
    original threading module's ``_active``).  The harness does the same as
    the release's cinder-volume; on 26-28 only the eventlet mode exists.
    ``native_threading`` gives the threads that are native in either mode,
    ``off_the_hub_thread`` says where green primitives cannot be shared.
``select_threading_service_backend``
    A program that is not cinder-volume (our command-line tool) runs on
    native threads.  29 requires ``oslo.service[threading]`` and its
    threading backend must be chosen before anything uses oslo.service, or
    it defaults to eventlet.  26-28 have no native-thread mode: 27-28's
    oslo.service has the backend but not its dependency (cotyledon, an
    extra Cinder does not ask for), 26's (4.1) not even the backend; asked
    for it, oslo.service logs an error and raises.  There nothing patches
    unless asked, so there is nothing to choose.
``reimage_keeps_volume``
    29's ``RBDDriver.copy_image_to_volume`` re-images (``disable_sparse``)
    by overwriting the volume in place with qemu-img
    (``image_utils.convert_image(skip_create=True)``): a clone stays a
    clone and keeps its snapshots.  26-28 delete the volume and ``rbd
    import`` the image again: a clone becomes a full image (a delete its
    snapshots would block).  We leave re-imaging to the
    release's upstream code on purpose; the tests ask this function which
    outcome to expect.
``glance_service_auth_module``
    27 made ``GlanceImageService.get_location`` sign in as cinder.conf's
    ``[glance]`` service user (``cinder.image.glance`` loads its
    keystoneauth plugin through ``ks_loading``, a new one per call);
    ``glance_service_auth`` lets that user keep its token.  26 never signs
    in as that user and has no ``ks_loading``: nothing to do there.
``fsid``
    ``RBDDriver._get_fsid`` decodes librados' answer with ``safe_decode``
    on 26-27 and returns it as is from 28.  The Ceph bindings we support
    return ``str`` already; bindings that return ``bytes`` would make every
    fsid comparison of ours false on 28+ (no clone ever), so we decode.
``qemu_img_limits``
    The CPU time and address space Cinder lets qemu-img have when it
    inspects an image: 29 reads them from the options
    ``image_introspection_cpu_limit`` and
    ``image_introspection_address_space_limit``; 26-28 have neither
    option, only the constant ``image_utils.QEMU_IMG_LIMITS``.

Differences that need no code of ours (checked against each release's
sources; a test still runs each on every release where noted):

* 29: ``BaseVD.__init__`` takes ``configuration`` as a keyword only (26-28:
  any keyword in ``**kwargs``).  Everything of ours passes it by keyword
  (``cli.backend``, and Cinder's own VolumeManager); test_compat builds the
  driver that way on every release.
* 27: ``GlanceImageService.get_location`` tries Glance's location API
  first (``get_image_locations``, policy "service" role, so it needs a
  ``[glance]`` service user in cinder.conf, see doc/source/install.rst)
  and then returns ``(None, [locations])``; 26 returns ``(direct_url,
  locations)`` from the image.  ``locations.urls_of`` reads both shapes
  (unit-tested).
* 27: the image-volume cache's ``_delete_image_volume`` became
  ``delete_cached_volume``; 29: ``get_entry`` takes ``clone_across_pools``.
  We call neither: our boot cache does not use Cinder's image-volume cache.
* 27: the flow hands ``create_cloned_volume`` an OVO Volume (26: the
  SQLAlchemy row) for a cinder:// image-volume.  Ours reads the source's
  ``id`` and ``name`` only, which both have; and our ``clone_image``
  clones cinder:// image-volumes itself, with OVOs, before the flow would.
"""

from __future__ import annotations

import os
import sys
from typing import Any
from typing import Optional
from typing import TypeVar

_T = TypeVar('_T')

#: Concurrency modes of cinder-volume 29; the harness runs the first one
#: unless told otherwise (Cinder 29's own default is eventlet).
MODES_29 = ('threading', 'eventlet')


def _cinder_dir() -> Optional[str]:
    """The installed ``cinder`` package's directory, without importing it
    (the concurrency mode must be chosen before Cinder loads)."""
    import importlib.util
    spec = importlib.util.find_spec('cinder')
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _has_monkey_patch_module() -> bool:
    directory = _cinder_dir()
    return bool(directory and
                os.path.exists(os.path.join(directory, 'monkey_patch.py')))


#: Whether this Cinder can run cinder-volume under native threads (29+).
NATIVE_THREADS: bool = _has_monkey_patch_module()


def concurrency_modes() -> tuple[str, ...]:
    """Modes this release's cinder-volume can run in, default first.

    29: eventlet by default, native threads on request; the harness has
    always defaulted to native threads there (the mode Cinder moves to).
    26-28: eventlet only.
    """
    return MODES_29 if NATIVE_THREADS else ('eventlet',)


def patch_concurrency(mode: str) -> None:
    """Set up eventlet or native threads as this release's cinder-volume
    does, before Cinder is imported."""
    if mode not in concurrency_modes():
        raise RuntimeError(
            'cinder-volume of this Cinder release runs only under %s, not '
            '%s' % (' or '.join(concurrency_modes()), mode))
    if NATIVE_THREADS:
        os.environ['OS_CINDER_DISABLE_EVENTLET_PATCHING'] = (
            '1' if mode == 'threading' else '0')
        from cinder import monkey_patch
        monkey_patch.patch(backend=mode)
        return
    # What cinder/cmd/volume.py of 26-28 does at import.
    import eventlet
    eventlet.monkey_patch()
    import __original_module_threading as orig_threading  # type: ignore
    import threading
    orig_threading.current_thread.__globals__['_active'] = (
        threading._active)  # type: ignore[attr-defined]


def eventlet_patched() -> bool:
    """Whether this process runs Cinder under eventlet."""
    if 'eventlet' not in sys.modules:
        return False
    from eventlet import patcher
    return bool(patcher.is_monkey_patched('thread'))


def native_threading() -> Any:
    """The ``threading`` module of the operating system's threads.

    Under eventlet, ``threading`` makes green threads, and a green thread
    runs only when the native thread it was started on yields to that
    thread's hub.  Started from a thread of eventlet's pool (where our
    periodic maintenance runs), it would not run at all while that thread
    sits in a librbd call.  What must keep time whatever its starter does
    (a lease's renewer) runs on a thread of this module instead, as
    eventlet's own pool does.
    """
    if not eventlet_patched():
        import threading
        return threading
    from eventlet import patcher
    return patcher.original('threading')


def off_the_hub_thread() -> bool:
    """Whether this runs under eventlet on a native thread other than the
    one of eventlet's hub (a thread of its pool, where our periodic
    maintenance runs).

    Green locks and conditions are not shared across native threads: a
    green thread there waits on that thread's own hub, and one of the
    hub's green threads woken from there would be switched to from the
    wrong thread (greenlet refuses; the wake is lost).  Under native
    threads every thread may share them: False.
    """
    if not eventlet_patched():
        return False
    from eventlet import patcher
    # By ident: 26-28's cinder-volume points the original module's
    # thread registry at the green one, so its current_thread() cannot
    # be trusted here.
    return (patcher.original('_thread').get_ident() !=
            native_threading().main_thread().ident)


def _upstream_tpool_wrap() -> Any:
    from cinder import utils
    return getattr(utils, 'tpool_wrap', None)


def tpool_wrap(obj: _T, autowrap: tuple = ()) -> _T:
    """``obj`` whose calls run off eventlet's hub when there is one."""
    upstream = _upstream_tpool_wrap()
    if upstream is not None:
        return upstream(obj, autowrap)
    if not eventlet_patched():
        return obj
    from eventlet import tpool
    return tpool.Proxy(obj, autowrap)  # type: ignore[return-value]


def select_threading_service_backend() -> None:
    """Run oslo.service on native threads where it can; before Cinder
    loads.  What ``cinder.monkey_patch.patch('threading')`` does, without
    its banner on stdout."""
    if not NATIVE_THREADS:
        return
    from oslo_service import backend as service_backend
    try:
        service_backend.init_backend(service_backend.BackendType.THREADING)
    except service_backend.exceptions.BackendAlreadySelected:
        pass  # imported by a program that chose already (the tests)


def reimage_keeps_volume() -> bool:
    """Whether upstream's re-image overwrites the volume in place (29) or
    deletes and imports it again (26-28)."""
    import inspect

    from cinder.image import image_utils
    return 'skip_create' in inspect.signature(
        image_utils.convert_image).parameters


def fsid(value: Any) -> str:
    """The fsid ``RBDDriver._get_fsid`` returned, as text on every
    release."""
    if isinstance(value, bytes):
        return value.decode('utf-8')
    return value


def glance_service_auth_module() -> Any:
    """``cinder.image.glance`` where it loads the ``[glance]`` service
    user's keystoneauth plugin per location lookup (27+), else None."""
    from cinder.image import image_utils  # noqa: F401
    from cinder.image import glance  # noqa: H306
    if getattr(glance, 'ks_loading', None) is None:
        return None
    return glance


def qemu_img_limits() -> Any:
    """The ``processutils.ProcessLimits`` Cinder runs ``qemu-img info``
    under: its ``image_introspection_*`` options (29), else its constant
    ``image_utils.QEMU_IMG_LIMITS`` (26-28)."""
    from cinder.image import image_utils
    from oslo_concurrency import processutils
    from oslo_config import cfg
    limits = getattr(image_utils, 'QEMU_IMG_LIMITS', None)
    if limits is not None:
        return limits
    conf = cfg.CONF
    return processutils.ProcessLimits(
        cpu_time=conf.image_introspection_cpu_limit,
        address_space=conf.image_introspection_address_space_limit
        * 1024 ** 3)
