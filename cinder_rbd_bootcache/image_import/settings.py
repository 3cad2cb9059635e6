"""An import's per-backend settings, read from the driver's options."""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any

from oslo_config import cfg
from oslo_utils import units

from cinder_rbd_bootcache import options

CONF = cfg.CONF


@dataclasses.dataclass(frozen=True)
class Settings:
    """Per-backend knobs, from the driver's configuration."""
    block_size: int            # RBD object size (rbd_store_chunk_size)
    writes_in_flight: int      # bootcache_import_writes_in_flight
    stall_timeout: int         # bootcache_import_stall_timeout
    progress_interval: float   # bootcache_progress_interval
    conversion_dir: str        # image_conversion_dir
    ceph_conf: str             # rbd_ceph_conf
    rbd_user: str              # rbd_user
    luks_pbkdf2_iterations: int  # bootcache_luks_pbkdf2_iterations
    luks_writers: int          # bootcache_luks_writers
    staging: str = 'rbd'       # bootcache_import_staging

    @classmethod
    def from_configuration(cls, configuration: Any) -> 'Settings':
        """The settings of the backend whose options are
        ``configuration`` (its cinder.conf section: ``rbd_*``,
        ``bootcache_*``)."""
        def option(name: str) -> Any:
            return options.value(configuration, name)
        return cls(
            block_size=configuration.rbd_store_chunk_size * units.Mi,
            writes_in_flight=option('bootcache_import_writes_in_flight'),
            stall_timeout=option('bootcache_import_stall_timeout'),
            progress_interval=option('bootcache_progress_interval'),
            # Where volume_utils.image_conversion_dir() points, without
            # its exists-then-makedirs, which races when several creates
            # start at once (FileExistsError).  Whoever writes there
            # creates the directory first, with exist_ok.
            conversion_dir=(CONF.image_conversion_dir or
                            tempfile.gettempdir()),
            staging=option('bootcache_import_staging'),
            ceph_conf=configuration.rbd_ceph_conf,
            rbd_user=configuration.rbd_user,
            luks_pbkdf2_iterations=option(
                'bootcache_luks_pbkdf2_iterations'),
            luks_writers=option('bootcache_luks_writers'))
