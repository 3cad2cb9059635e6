"""Sandbox + Cinder + backends, started together and always torn down.

Used by the demo, the bench and the functional tests' fixtures so that the
rule "leave nothing running, leave no RBD image" is implemented once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from typing import Any
from typing import Iterator
from typing import Optional

from oslo_utils import units

from bootcache_testkit import sandbox as ceph_sandbox


@dataclasses.dataclass
class BackendSpec:
    """A backend to start: its section name, driver and option overrides."""
    name: str
    driver: str
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Session:
    sandbox: Any
    process: Any
    backends: dict
    runner: Any

    def leftovers(self) -> dict[str, list[str]]:
        return leftover_rbd_images(self.sandbox)


def leftover_rbd_images(sandbox: Any) -> dict[str, list[str]]:
    """RBD images (and trash entries) still in the sandbox's pools."""
    import rbd
    found: dict[str, list[str]] = {}
    with sandbox.admin_client() as cluster:
        for pool in sandbox.pools:
            with cluster.open_ioctx(pool) as ioctx:
                names = list(rbd.RBD().list(ioctx))
                names += ['trash:%s' % t['name']
                          for t in rbd.RBD().trash_list(ioctx)]
            if names:
                found[pool] = names
    return found


@contextlib.contextmanager
def cinder_session(specs: list[BackendSpec],
                   workdir: Optional[str] = None,
                   memstore_bytes: int = 4 * units.Gi,
                   virtual_size: int = 64 * units.Mi,
                   data_bytes: int = 16 * units.Mi,
                   concurrency: Optional[str] = None,
                   keep_workdir: bool = False,
                   debug: bool = False,
                   pools: tuple[str, ...] = ceph_sandbox.POOLS
                   ) -> Iterator[Session]:
    """Start everything; on the way out delete every volume and image,
    stop Cinder's services and the Ceph daemons, even after a failure."""
    from bootcache_testkit.harness import cinder_process
    from bootcache_testkit.harness import scenarios

    own_workdir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix='bootcache-')
    sandbox = ceph_sandbox.Sandbox(os.path.join(workdir, 'ceph'),
                                   memstore_bytes=memstore_bytes,
                                   pools=pools)
    process = None
    backends: dict = {}
    runner = None
    try:
        sandbox.up(tie_to_parent=True)
        process = cinder_process.CinderProcess(
            os.path.join(workdir, 'cinder'), sandbox,
            concurrency=concurrency, debug=debug)
        for spec in specs:
            backends[spec.name] = cinder_process.BackendUnderTest(
                process, spec.name, spec.driver, **spec.options)
        runner = scenarios.ScenarioRunner(process, virtual_size, data_bytes)
        yield Session(sandbox, process, backends, runner)
    finally:
        try:
            for backend in backends.values():
                with contextlib.suppress(Exception):
                    backend.delete_all()
            if runner is not None:
                with contextlib.suppress(Exception):
                    runner.cleanup_images()
            if process is not None:
                process.shutdown()
        finally:
            # The driver's shared librados clients, before their cluster.
            from cinder_rbd_bootcache.ceph import clients as rados_clients
            rados_clients.CLIENTS.close_all()
            sandbox.down()
            if own_workdir and not keep_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
