"""Cinder's ``[glance]`` service user keeps its Keystone token between creates.

Every create from an image asks Glance for the image's locations as the
``[glance]`` service user (the location API's policy wants the ``service``
role; see ``compat``).  Cinder 27 to 29 build that user's keystoneauth
plugin anew for each call (``cinder.image.glance._create_glance_client``
with ``privileged_user``), and a new plugin holds no token: each create
signs in to Keystone with the user's password, Keystone checks it with
bcrypt (CPU-heavy by design), and glance-api's authtoken then validates a
token it has never seen.  When many creates start at once those sign-ins
queue in Keystone, and each create's ``ExtractVolumeSpecTask`` (where the
lookup happens) waits for its own before the download can start.

keystoneauth plugins are made to be kept: one holds its token, takes a
new one shortly before it expires, and keystoneauth's session signs in
again when a service answers 401 (a revoked token).  ``install`` gives
Cinder's glance module, in this cinder-volume process only, a loader that
hands out one plugin for the ``[glance]`` group; every other use of
keystoneauth's loading is untouched.  Each backend of a multi-backend
cinder-volume runs in its own process: another driver's backend keeps
Cinder's behaviour.  A change to ``[glance]`` takes a restart of
cinder-volume, as any change to cinder.conf does.

A ``cinder.image.glance`` that keeps the ``[glance]`` user's
keystoneauth plugin between calls (as it keeps its other clients) would
retire this module.
"""

from __future__ import annotations

import threading
from typing import Any

from oslo_log import log as logging

from cinder_rbd_bootcache.upstream import compat

LOG = logging.getLogger(__name__)

GROUP = 'glance'


class ReusingLoader:
    """Stands in for ``keystoneauth1.loading`` where Cinder's glance module
    looks it up: ``load_auth_from_conf_options`` for ``[glance]`` answers
    the same plugin every time; every other name is keystoneauth's own."""

    def __init__(self, loading: Any) -> None:
        self.loading = loading
        self._plugin: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loading, name)

    def load_auth_from_conf_options(self, conf: Any, group: str,
                                    **kwargs: Any) -> Any:
        if group != GROUP or kwargs:
            return self.loading.load_auth_from_conf_options(conf, group,
                                                            **kwargs)
        with self._lock:
            if self._plugin is None:
                # None (no auth_type) is not kept: Cinder asks only when
                # [glance] has an auth_type, and then it gets a plugin.
                self._plugin = self.loading.load_auth_from_conf_options(
                    conf, group)
            return self._plugin


def install() -> None:
    """Once per process; nothing on a Cinder that never signs in as the
    ``[glance]`` user (26)."""
    module = compat.glance_service_auth_module()
    if module is None or isinstance(module.ks_loading, ReusingLoader):
        return
    module.ks_loading = ReusingLoader(module.ks_loading)
    LOG.debug('The [glance] service user keeps its Keystone token between '
              'creates in this process.')
