"""Whether Glance still serves an image: deleted and deactivated images
have no boot-cache entry.

Asked by the maintenance's catch-up (``bootcache.retirement``) and read
from Glance's notifications (``listener``).  Glance is asked as the
``[glance]`` service user where Cinder can sign in as it (Cinder 27 and
later, ``[glance] auth_type`` set), else with the caller's context, as
Cinder's own image service does: a maintenance's admin context carries
no token, so a Keystone deployment needs that user.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

from glanceclient import exc as glance_exc

from cinder_rbd_bootcache.upstream import compat

#: Why an entry leaves the cache, by what Glance says of its image.
DELETED = 'its image was deleted in Glance'
DEACTIVATED = 'its image was deactivated in Glance'

#: Glance's image statuses (``status``) of an image no create can use.
RETIRING_STATUSES = {
    'deleted': DELETED,
    'pending_delete': DELETED,
    'killed': DELETED,
    'deactivated': DEACTIVATED,
}


def why_retire(status: Optional[str]) -> Optional[str]:
    """Why the entry of an image in ``status`` must go, or None."""
    return RETIRING_STATUSES.get(status or '')


def ask(image_service: Any, context: Any, image_id: str) -> Optional[str]:
    """Why the entry of ``image_id`` must go, from Glance's own answer,
    or None while Glance serves the image.  Raises whatever the call to
    Glance raised when Glance could not say (unreachable, refused)."""
    kwargs = {}
    if compat.glance_service_auth_module() is not None:
        kwargs['privileged_user'] = True
    try:
        image = image_service._client.call(context, 'get', image_id,
                                           **kwargs)
    except glance_exc.HTTPNotFound:
        return DELETED
    return why_retire(image.get('status'))


def ask_glance(image_id: str) -> Optional[str]:
    """:func:`ask` Cinder's image service, with an admin context."""
    from cinder import context
    from cinder.image import image_utils  # noqa: F401
    from cinder.image import glance  # noqa: H306
    return ask(glance.get_default_image_service(),
               context.get_admin_context(), image_id)
