"""What an image really is, checked before any of it reaches Ceph or qemu.

Glance's ``disk_format`` is what the uploader claims.  oslo.utils'
``format_inspector`` reads the bytes: a claim that does not match the
content, a qcow2 with a backing file or an external data file, a VMDK
whose descriptor names other files, and every other failed safety check
stop the import here.  qemu-img only ever sees a file that passed, and is
told its format (``-f``), so it never probes.
"""

from __future__ import annotations

import io
import os
from typing import Any
from typing import IO

from oslo_utils.imageutils import format_inspector

from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance.facts import ImageFacts

#: Formats the import pipeline writes itself; the value is qemu-img's name.
#: Anything else (iso, ploop, compressed containers...) is left to Cinder's
#: own download path.
QEMU_FORMATS = {
    'raw': 'raw',
    'qcow2': 'qcow2',
    'vmdk': 'vmdk',
    'vhd': 'vpc',
    'vhdx': 'vhdx',
    'vdi': 'vdi',
}

#: Detected formats that are raw content: a whole-disk image with an MBR or
#: GPT partition table is what most raw cloud images are.
RAW_CONTENT = {'raw', 'gpt'}

#: Bytes of a raw stream inspected before the first write: every header the
#: inspectors look for at the start of a file lies well inside it.
HEAD_BYTES = 1024 * 1024

#: Bytes of a Glance rbd-store snapshot read before it is cloned for an
#: image declared raw: every signature the inspectors match a format by
#: lies inside it (the deepest, an ISO 9660 volume descriptor, at 32 KiB),
#: so ``check_raw_head`` reaches the same verdict on it as on
#: ``HEAD_BYTES``; it is one small read on the clone path.
SNAPSHOT_HEAD_BYTES = 64 * 1024

#: Bytes ``check_stream`` hands the inspectors at a time, as
#: ``format_inspector.detect_file_format`` does.
_INSPECT_READ = 4096


def supported(facts: ImageFacts) -> bool:
    """True if the pipeline can import this image (bare container)."""
    return (facts.disk_format in QEMU_FORMATS and
            facts.container_format in (None, 'bare'))


def check_raw_head(head: bytes, image_id: str) -> None:
    """Refuse a stream declared raw whose first bytes are another format."""
    wrapper = format_inspector.InspectWrapper(io.BytesIO(head))
    try:
        wrapper.read(len(head))
    finally:
        wrapper.close()
    detected = wrapper.formats or []
    names = sorted(str(i) for i in detected)
    if not set(names) <= RAW_CONTENT:
        raise errors.ImageFormatMismatch(image_id=image_id, declared='raw',
                                         detected=' and '.join(names))
    for inspector in detected:
        if str(inspector) != 'raw':
            _safety_check(inspector, image_id)


def check_file(path: str, disk_format: str, image_id: str) -> int:
    """Check a staged image file; return its virtual size in bytes."""
    with open(path, 'rb') as f:
        return check_stream(f, os.path.getsize(path), disk_format, image_id)


def check_stream(source: IO[bytes], size: int, disk_format: str,
                 image_id: str) -> int:
    """Check an image read from ``source`` (a file of ``size`` bytes,
    read from its start, as ``format_inspector.detect_file_format``
    reads a path); return its virtual size in bytes."""
    try:
        inspector = _detect(source)
    except format_inspector.ImageFormatError as exc:
        raise errors.ImageUnsafe(image_id=image_id,
                                 reason='its format is ambiguous (%s)' % exc)
    detected = str(inspector)
    if detected != disk_format and not (
            disk_format == 'raw' and detected in RAW_CONTENT):
        raise errors.ImageFormatMismatch(image_id=image_id,
                                         declared=disk_format,
                                         detected=detected)
    _safety_check(inspector, image_id)
    if detected in RAW_CONTENT:
        # The raw inspector stops reading early; its size is the file's.
        return size
    return inspector.virtual_size


def _detect(source: IO[bytes]) -> Any:
    """``detect_file_format`` on an open file: read until every inspector
    has decided, or to the end."""
    wrapper = format_inspector.InspectWrapper(source)
    try:
        while wrapper.read(_INSPECT_READ):
            if wrapper.format:
                return wrapper.format
    finally:
        wrapper.close()
    return wrapper.format


def _safety_check(inspector, image_id: str) -> None:
    try:
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as exc:
        reasons = '; '.join('%s: %s' % (name, failure)
                            for name, failure in sorted(exc.failures.items()))
        raise errors.ImageUnsafe(image_id=image_id,
                                 reason='it failed the %s safety checks (%s)'
                                 % (inspector, reasons))
    except format_inspector.ImageFormatError as exc:
        raise errors.ImageUnsafe(image_id=image_id,
                                 reason='its %s header cannot be checked '
                                 '(%s)' % (inspector, exc))
