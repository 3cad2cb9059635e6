"""The driver's Ceph connections and start-up checks, where they go
through upstream RBDDriver's private connection methods and state.

* ``connect_shared`` is the driver's ``_connect_to_rados`` (upstream's
  private method, which ``RADOSClient`` and ``RBDVolumeProxy`` call for
  every operation): upstream's connection, made once per Ceph identity
  and shared (``ceph.clients``), read through upstream's
  ``_get_config_tuple``.  An upstream RBDDriver that keeps its librados
  client between operations retires it.
* ``check_ceph_settings`` runs ``ceph.preflight`` before upstream's
  ``do_setup``, reading the driver's ``keyring_file`` and
  ``_active_backend_id``.  An upstream ``do_setup`` that names the
  setting at fault instead of retrying the connection retires it.
"""

from __future__ import annotations

from typing import Any
from typing import Callable
from typing import Optional

from cinder.volume.drivers import rbd as upstream_rbd
from oslo_config import cfg
from oslo_log import log as logging

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.ceph import clients as rados_clients
from cinder_rbd_bootcache.ceph import preflight
from cinder_rbd_bootcache import errors

CONF = cfg.CONF
LOG = logging.getLogger(__name__)


def connect_shared(driver: Any, upstream_connect: Callable[..., tuple],
                   pool: Optional[str], remote: Optional[dict],
                   timeout: Optional[int]) -> tuple:
    """Upstream's ``(client, ioctx)`` for ``pool``, the client shared by
    this process's operations with the same identity
    (``rados_clients.CLIENTS``); ``upstream_connect`` is upstream's
    ``_connect_to_rados`` bound to ``driver``, which makes a new one."""
    name, conf, user, _secret_uuid = driver._get_config_tuple(remote)
    if timeout is None:
        timeout = driver.configuration.rados_connect_timeout
    return rados_clients.CLIENTS.connect(
        # driver.rados is the binding; in upstream's unit tests each
        # test's stand-in, so that no test gets another test's client.
        upstream_connect, (driver.rados, name, conf, user),
        'client.%s of cluster %s' % (user, name), conf,
        pool or driver.configuration.rbd_pool, remote, timeout)


def disconnect(client: Any, ioctx: Any) -> None:
    """Close the ioctx of a shared client; upstream's for any other."""
    if not rados_clients.CLIENTS.disconnect(client, ioctx):
        upstream_rbd.RBDDriver._disconnect_from_rados(client, ioctx)


def check_ceph_settings(driver: Any) -> None:
    """Run ``preflight``'s checks for the driver's backend; log and raise
    the first failure (``errors.CephMisconfigured``).

    Only with Ceph's bindings and a configuration that carries our
    options (a driver built with stand-ins for either, as in upstream's
    unit tests, keeps upstream's set-up: see ``options.value``), and only
    for the primary cluster: a failed-over backend's settings come from
    its replication_device; and not again for a driver whose maker ran
    them already (``ceph_checked``: the command's ``Backend.driver``).
    """
    if getattr(driver, 'ceph_checked', False):
        return
    try:
        group = driver.configuration.config_group
        driver.configuration.bootcache_pool
    except AttributeError:
        return
    if ceph.rados is None or driver.rados is not ceph.rados or (
            driver._active_backend_id not in (None, 'default')):
        return
    keyring_conf = driver.keyring_file or preflight.keyring_conf_of(
        CONF.config_file or [], (group or 'DEFAULT', 'backend_defaults'))
    settings = preflight.Settings.from_configuration(driver.configuration,
                                                     keyring_conf)
    try:
        preflight.Preflight(driver.rados, settings).run()
    except errors.CephMisconfigured as exc:
        LOG.error('Backend %(backend)s cannot use Ceph: %(why)s',
                  {'backend': group, 'why': exc})
        raise
