"""cinder-backup's Ceph driver in this process.

The backup manager attaches a volume through os-brick, whose RBD
connector hands the backup driver an ``RBDVolumeIOWrapper`` of the
volume's RBD image; the Ceph driver then backs it up with ``rbd
export-diff | rbd import-diff`` into its pool (a full backup: a base image
and a snapshot of the volume to diff the next incremental from) and
restores it the same way.  Here the wrappers are made directly, for the
sandbox's user (the RPC round trip of the attach is what the harness
cannot answer), and the driver is Cinder's own ``CephBackupDriver``.
The backups go to ``pool`` (by default the sandbox's ``images`` pool,
which the sandbox's user may write).
"""

from __future__ import annotations

import contextlib
from typing import Any
from typing import Iterator

DRIVER = 'cinder.backup.drivers.ceph.CephBackupDriver'


class CephBackups:
    """Backups of one backend's volumes with the Ceph backup driver."""

    def __init__(self, process: Any, backend: Any,
                 pool: str = 'images') -> None:
        from oslo_config import cfg

        from cinder.backup.drivers import ceph  # registers its options

        sandbox = process.sandbox
        for name, value in (('backup_ceph_conf', sandbox.conf_path),
                            ('backup_ceph_user', sandbox.client_name),
                            ('backup_ceph_pool', pool)):
            cfg.CONF.set_override(name, value)
        self.process = process
        self.backend = backend
        self.driver = ceph.CephBackupDriver(process.context())

    @contextlib.contextmanager
    def _volume_file(self, volume: Any) -> Iterator[Any]:
        """The volume as os-brick's RBD connector hands it out."""
        from os_brick.initiator import linuxrbd
        sandbox = self.process.sandbox
        client = linuxrbd.RBDClient(sandbox.client_name, self.backend.pool,
                                    conffile=sandbox.conf_path)
        with linuxrbd.RBDVolume(client, volume.name) as image:
            yield linuxrbd.RBDVolumeIOWrapper(linuxrbd.RBDImageMetadata(
                image, self.backend.pool, sandbox.client_name,
                sandbox.conf_path))

    def backup(self, volume: Any) -> Any:
        """A full backup of ``volume``; the Backup, available."""
        from cinder import objects
        context = self.process.context()
        backup = objects.Backup(
            context=context, volume_id=volume.id, status='creating',
            user_id=context.user_id, project_id=context.project_id,
            size=volume.size, display_name='harness-backup', service=DRIVER)
        backup.create()
        with self._volume_file(volume) as volume_file:
            updates = self.driver.backup(backup, volume_file)
        backup.update(dict(updates or {}, status='available'))
        backup.save()
        return backup

    def restore(self, backup: Any, volume: Any) -> None:
        """Restore ``backup`` into the new volume ``volume``."""
        with self._volume_file(volume) as volume_file:
            self.driver.restore(backup, volume.id, volume_file, True)

    def delete(self, backup: Any) -> None:
        self.driver.delete_backup(backup)
        backup.destroy()
