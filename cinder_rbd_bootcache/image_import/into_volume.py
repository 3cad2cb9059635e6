"""An image into a volume's RBD image, for the driver.

``import_image`` is the last way ``clone_image`` makes a volume
(``create_from_image``) and the whole of ``copy_image_to_volume``, the
flow's download path (``copy_image_to_volume``): the pipeline converts the
image straight into the volume's RBD image, with no second raw file and
no ``rbd import``.
"""

from __future__ import annotations

from typing import Any
from typing import Callable
from typing import Optional

from cinder import exception
from cinder.image import image_utils
from oslo_utils import excutils

from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.glance import formats as image_format
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline

#: Upstream's ``copy_image_to_volume``, bound to the driver:
#: ``(context, volume, image_service, image_id, disable_sparse=...)``.
UpstreamCopy = Callable[..., None]


def import_image(driver: Any, context: Any, volume: Any,
                 image_service: Any, facts: ImageFacts,
                 pipeline: import_pipeline.ImagePipeline,
                 local_path: Optional[str] = None,
                 reported_by_flow: tuple = ()) -> None:
    """Fill the volume's RBD image; on failure it is gone and the user has
    a message (``cinder message-list``), unless it is one of
    ``reported_by_flow``, which Cinder's flow tells the user about."""
    try:
        pipeline.import_image(context, image_service, facts,
                              [driver._volume_target(volume)], local_path)
    except Exception as exc:
        with excutils.save_and_reraise_exception():
            if not isinstance(exc, reported_by_flow):
                driver._tell_user(context, volume, exc, facts.id)


def copy_image_to_volume(driver: Any, upstream: UpstreamCopy, context: Any,
                         volume: Any, image_service: Any, image_id: str,
                         disable_sparse: bool = False) -> None:
    """The flow's download (already on local disk) into the volume.
    Re-imaging an existing volume (``disable_sparse``) and formats the
    pipeline does not handle stay ``upstream``'s."""
    facts = ImageFacts.from_glance(image_service.show(context, image_id))
    if disable_sparse or not image_format.supported(facts):
        return upstream(context, volume, image_service, image_id,
                        disable_sparse=disable_sparse)
    local_path = image_utils.TemporaryImages.for_image_service(
        image_service).get(context, image_id)
    import_image(driver, context, volume, image_service, facts,
                 driver._import_pipeline(), local_path=local_path,
                 # On this path the flow tells the user about these.
                 reported_by_flow=(
                     exception.ImageTooBig,
                     exception.ImageSignatureVerificationException))
