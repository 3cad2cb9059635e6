"""Asking the image service for an image's data, and who hashes it.

Cinder's ``GlanceImageService.download`` returns python-glanceclient's
``images.data(image_id)`` with its default ``do_checksum=True``: the
client fetches the image record and hashes every chunk (1 MiB since
python-glanceclient 4.4.0, 64 KiB before) with its
``os_hash_algo`` (else md5) in the thread that consumes the stream,
raising ``IOError(EPIPE, 'Corrupt image download ...')`` after the last
chunk on a mismatch.  Under eventlet that thread is the hub: a sha512 of
1 GiB is about 1.3 s of CPU during which cinder-volume serves nothing
else, and the import loop is slowed by as much.  Every other create the
process handles meanwhile (a storm of creates of one image) waits on it.

So for Cinder's own image service this asks the client for the data
without its check (``do_checksum=False``, which also saves the client's
extra GET of the image record) and the pipeline's ``ChecksumVerifier``
hashes the same bytes against the same Glance hash, in 4 MiB blocks on a
native thread, while the hub goes on reading.  It is the same check:
multihash, else md5, compared after the last byte, and a mismatch fails
the import before anything is published.

``GlanceImageService._client`` (a ``GlanceClientWrapper``, whose
``call`` retries connection errors as ``download`` does) and
``glance._reraise_translated_image_exception`` are Cinder internals; they
are the same in Cinder 26 to 29 (``tests/unit/test_image_download.py``
checks that the running release has them).  An image service without
them is asked with ``download`` and trusted as ``client_verifies`` says.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Iterable

from cinder import exception
# image_utils first: cinder.image.glance and image_utils import each other,
# and only this order completes on every supported release.
from cinder.image import image_utils  # noqa: F401
from cinder.image import glance  # noqa: H306,I100


@dataclasses.dataclass(frozen=True)
class Download:
    """An image's data, and whether its reader must hash it."""
    chunks: Iterable[bytes]
    hashing: bool


def client_verifies(image_service: Any) -> bool:
    """Whether ``image_service.download`` returns data its client has
    already checked against Glance's hash (Cinder's GlanceImageService,
    through python-glanceclient)."""
    return isinstance(image_service, glance.GlanceImageService)


def _glance_client(image_service: Any) -> Any:
    """The GlanceClientWrapper of Cinder's image service, or None."""
    if not isinstance(image_service, glance.GlanceImageService):
        return None
    client = getattr(image_service, '_client', None)
    return client if callable(getattr(client, 'call', None)) else None


def open_stream(context: Any, image_service: Any,
                image_id: str) -> Download:
    """The image's data, in the chunks the service sends (1 MiB from
    python-glanceclient 4.4.0 and later); ``hashing`` says whether the
    caller must check it against Glance's hash (it must, unless the
    client already does)."""
    client = _glance_client(image_service)
    if client is None:
        return Download(image_service.download(context, image_id),
                        hashing=not client_verifies(image_service))
    try:
        chunks = client.call(context, 'data', image_id, do_checksum=False)
    except Exception:
        # As GlanceImageService.download: NotFound, Forbidden, ... become
        # Cinder's ImageNotFound, ImageNotAuthorized, ...
        glance._reraise_translated_image_exception(image_id)
    if chunks is None:
        raise exception.ImageDownloadFailed(
            image_href=image_id, reason='image contains no data.')
    return Download(chunks, hashing=True)
