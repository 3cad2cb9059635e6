"""qemu-img converting a checked image straight into RBD images.

qemu-img writes each target through its ``rbd:`` driver (``-n
--target-is-zero`` into the existing, zeroed image: holes stay holes),
never into a second local file.  It reads a local file or an RBD image
(``sources``: a Glance rbd-store snapshot, or a download staged in RBD).
Several targets are converted at once, one qemu-img each, reading the
same source (a local file from the page cache).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from typing import Any
from typing import Callable
from typing import Optional
from typing import Sequence
from typing import Union

from oslo_concurrency import processutils
from oslo_log import log as logging

from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.glance import formats as image_format
from cinder_rbd_bootcache.image_import import progress as progress_mod
from cinder_rbd_bootcache.image_import.settings import Settings
from cinder_rbd_bootcache.image_import import sources as sources_mod
from cinder_rbd_bootcache.image_import import targets as targets_mod
from cinder_rbd_bootcache.upstream import compat

LOG = logging.getLogger(__name__)

_QEMU_PROGRESS = re.compile(rb'\((\d+(?:\.\d+)?)/100%\)')


#: qemu-img's ``rbd:`` filename (``sources.rbd_spec``).
rbd_spec = sources_mod.rbd_spec


def run_with_progress(cmd: list[str], tracker: Any) -> None:
    """Run ``qemu-img convert -p``, feeding its percentages to ``tracker``.

    qemu-img prints ``    (12.34/100%)`` followed by a carriage return;
    processutils.execute would only return that at the end, so the command
    runs under subprocess here (green under eventlet's monkey patching).
    Raises processutils.ProcessExecutionError like execute does.
    """
    import subprocess  # at call time: eventlet's patched one if any
    LOG.debug('Running %s', ' '.join(cmd))
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    pending = b''
    # Small reads: one progress line is ~20 bytes.  read(n) works on the
    # green pipes of eventlet's subprocess too (read1 may not).
    while data := child.stdout.read(32):
        pending += data
        *lines, pending = pending.replace(b'\r', b'\n').split(b'\n')
        for line in lines:
            match = _QEMU_PROGRESS.search(line)
            if match and tracker.total:
                reached = int(float(match.group(1)) * tracker.total / 100)
                if reached > tracker.done:
                    tracker.advance(reached - tracker.done)
    stderr = child.stderr.read().decode(errors='replace')
    if child.wait() != 0:
        raise processutils.ProcessExecutionError(
            exit_code=child.returncode, stderr=stderr, cmd=' '.join(cmd))


def run_together(calls: Sequence[Callable[[], None]], name: str) -> None:
    """Run ``calls`` at once, the first in this thread and each other in
    a thread named ``name``, and raise the first failure once all have
    ended.  Plain threads (green ones under eventlet, where qemu-img's
    pipes and processutils' waits are green too); not a
    ThreadPoolExecutor, whose workers wait on a C queue eventlet does not
    make green."""
    failures: list[BaseException] = []

    def run(call: Callable[[], None]) -> None:
        try:
            call()
        except BaseException as exc:  # raised below, in the caller
            failures.append(exc)

    others = [threading.Thread(target=run, args=(call,), name=name,
                               daemon=True)
              for call in calls[1:]]
    for thread in others:
        thread.start()
    if calls:
        run(calls[0])
    for thread in others:
        thread.join()
    if failures:
        raise failures[0]


class Converter:
    """Converts checked image files into the RBD images of one backend."""

    def __init__(self, settings: Settings, connect: targets_mod.Connect,
                 execute: Optional[Callable[..., Any]] = None,
                 on_progress: Optional[Callable] = None) -> None:
        self.settings = settings
        self._connect = connect
        self._execute = execute or run_with_progress
        self._on_progress = on_progress

    def convert(self, source: Union[str, sources_mod.Source],
                facts: ImageFacts,
                targets: Sequence[targets_mod.Target]) -> None:
        """Convert the image into every target, its contents inspected
        first (``Source.inspect``: ``formats`` checks); one qemu-img
        each, all at once, the first reporting progress.  ``source`` is a
        ``sources.Source`` (a local file or an RBD image) or the path of
        a local file."""
        image_id = facts.id
        if isinstance(source, str):
            source = sources_mod.local_file(source, facts.disk_format,
                                            image_id)
        # After the format checks, before any write: qemu-img's own check
        # of the image's metadata, on what the conversion reads (a local
        # path or an ``rbd:`` spec); both once per source.
        virtual_size = source.inspect(then=functools.partial(
            check_image, disk_format=facts.disk_format, image_id=image_id))
        targets_mod.check_room(image_id, virtual_size, targets)
        run_together(
            [functools.partial(self._convert_into, source.spec, facts,
                               virtual_size, target, index == 0)
             for index, target in enumerate(targets)],
            name='bootcache-convert')

    def _convert_into(self, spec: str, facts: ImageFacts,
                      virtual_size: int, target: targets_mod.Target,
                      report_progress: bool) -> None:
        settings = self.settings
        image_id = facts.id
        disk_format = facts.disk_format
        started = time.monotonic()
        tracker = progress_mod.ImportProgress(
            image_id, '%s/%s (qemu-img)' % (target.pool, target.name),
            virtual_size, settings.progress_interval,
            self._on_progress if report_progress else None)
        try:
            self._execute(
                ['qemu-img', 'convert', '-p', '-f',
                 image_format.QEMU_FORMATS[disk_format], '-O', 'raw',
                 # Into the existing, zeroed image: holes stay holes.
                 '-n', '--target-is-zero',
                 # Out-of-order writes with 8 coroutines keep Ceph busy.
                 '-W', '-m', '8', spec,
                 rbd_spec(target.pool, target.name, settings.rbd_user,
                          settings.ceph_conf, settings.stall_timeout)],
                tracker)
        except processutils.ProcessExecutionError as exc:
            targets_mod.refuse_if_full(self._connect, target.pool, image_id)
            raise errors.ImportWriteFailed(
                image_id=image_id, pool=target.pool,
                reason='qemu-img convert failed: %s' % (
                    exc.stderr or exc).strip())
        LOG.info('qemu-img converted %(format)s image %(image)s '
                 '(%(virtual)s virtual) into %(pool)s/%(name)s in '
                 '%(seconds).1f s.',
                 {'format': disk_format, 'image': image_id,
                  'virtual': progress_mod.human(virtual_size),
                  'pool': target.pool, 'name': target.name,
                  'seconds': time.monotonic() - started})


#: qemu-img check's exit codes (qemu-img(1)): the check found nothing, it
#: could not be completed, it found corruptions, it found only leaked
#: clusters, the format has no check.
CHECK_OK, CHECK_INCOMPLETE, CHECK_CORRUPT, CHECK_LEAKS, CHECK_UNSUPPORTED = (
    0, 1, 2, 3, 63)


def _check_limits() -> processutils.ProcessLimits:
    """The CPU time and address space Cinder allows qemu-img when it
    inspects an image (``compat.qemu_img_limits``): a crafted header
    cannot make the check run or grow without end."""
    return compat.qemu_img_limits()


def check_image(source: str, disk_format: str, image_id: str,
                execute: Optional[Callable[..., Any]] = None) -> None:
    """Refuse an image whose own metadata qemu-img check finds corrupt.

    ``source`` is a local path or a qemu ``rbd:`` spec (``rbd_spec``).
    qemu-img convert reads a qcow2 whose clusters lie beyond the end of
    the file as zeros and succeeds; the check (metadata only: it reads the
    tables, not the data) tells.  Corruptions, or a check that cannot be
    completed, raise ``errors.ImageCorrupt`` (an ``rbd:`` source whose
    cluster cannot be reached: ``errors.ImageSourceUnreadable``); leaked
    clusters (space
    wasted, no data wrong) are logged and allowed; a format qemu-img has
    no check for (raw, vhd) passes unchecked.
    """
    execute = execute or processutils.execute
    try:
        out, _err = execute(
            'env', 'LC_ALL=C', 'qemu-img', 'check', '--output=json', '-f',
            image_format.QEMU_FORMATS[disk_format], source,
            prlimit=_check_limits())
        code = CHECK_OK
    except processutils.ProcessExecutionError as exc:
        out, code = exc.stdout or '', exc.exit_code
        if code == CHECK_INCOMPLETE and source.startswith('rbd:') and (
                'error connecting' in (exc.stderr or '')):
            # Ceph could not be reached: nothing is known of the image.
            raise errors.ImageSourceUnreadable(
                image_id=image_id, source=source.split(':conf=')[0][4:],
                reason=(exc.stderr or '').strip().replace('qemu-img: ', ''))
        if code not in (CHECK_LEAKS, CHECK_UNSUPPORTED):
            raise errors.ImageCorrupt(
                image_id=image_id, reason=_check_failure(exc))
    if code == CHECK_UNSUPPORTED:
        LOG.debug('qemu-img has no check for the %(format)s format of '
                  'image %(image)s.', {'format': disk_format,
                                       'image': image_id})
    elif code == CHECK_LEAKS:
        LOG.info('qemu-img check found %(leaks)s leaked clusters in image '
                 '%(image)s: space the image wastes, no data is wrong; it '
                 'is converted.', {'leaks': _report(out).get('leaks', '?'),
                                   'image': image_id})


def _report(out: str) -> dict:
    """qemu-img check's JSON report, or {} if it printed none."""
    try:
        report = json.loads(out)
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


def _check_failure(exc: processutils.ProcessExecutionError) -> str:
    """What qemu-img check found, in words for the error message."""
    report = _report(exc.stdout or '')
    if exc.exit_code == CHECK_CORRUPT:
        return 'qemu-img check found %s corruptions in its metadata' % (
            report.get('corruptions', 'some'))
    detail = (exc.stderr or '').strip().replace('qemu-img: ', '')
    if exc.exit_code == CHECK_INCOMPLETE:
        return 'qemu-img check could not check its metadata (%s)' % (
            detail or 'no reason given')
    return 'qemu-img check did not end (exit code %s%s)' % (
        exc.exit_code, ': %s' % detail if detail else '')
