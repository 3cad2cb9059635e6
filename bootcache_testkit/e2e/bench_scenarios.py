"""The timed scenarios of the end-to-end bench, through the real services.

Each scenario uploads a fresh image to Glance, runs once per driver
(each driver is a backend of the one cinder-volume, with a volume type
of the same name), and removes everything it made afterwards: volumes,
servers, our boot-cache entry of the image, then the image itself, so
that every "first" create really is the first one of that image.

A create is timed from just before its API call until a read of the
volume (polled every :data:`POLL` seconds at most) shows a final status;
a storm from just before its first API call until the last volume is
final; Nova boots from just before the first ``POST /servers`` until
every server is ACTIVE (then each build action must have succeeded).
Every client holds its Keystone token before its clock starts, as a
user's client does before its API call.
Downloads are GETs of the image's data in glance-api's access log.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from typing import Any
from typing import Callable
from typing import Optional
from typing import Sequence

from bootcache_testkit.e2e import clients
from bootcache_testkit.e2e import cpu_budget
from bootcache_testkit.e2e import environment

#: Most seconds between two reads of a status (the resolution of every
#: time measured).
POLL = 0.1
FINAL = ('available', 'error')
FLAVOR = 'bench-bfv'
#: The bench's Keystone user: it makes volume types and flavors and
#: force-deletes what a timeout left, which takes the cloud admin.
USER = 'admin'


class Timeout(Exception):
    """Something did not reach the state awaited in time."""


@dataclasses.dataclass
class Sample:
    """One scenario run with one driver."""
    scenario: str
    driver: str
    seconds: float = float('nan')
    ok: bool = False
    downloads: int = 0
    detail: str = ''
    #: Seconds of each volume (storm) or server (Nova), from the start.
    each: list[float] = dataclasses.field(default_factory=list)
    #: Extra figures (e.g. the untimed first create before a second; the
    #: CPU-seconds of the timed window, ``cpu``: see :mod:`cpu_budget`).
    extra: dict = dataclasses.field(default_factory=dict)


def poll(read: Callable[[], Any], done: Callable[[Any], bool],
         timeout: float, what: str) -> Any:
    """Call ``read`` until ``done(result)``: a new read at most
    :data:`POLL` s after the previous one began."""
    deadline = time.monotonic() + timeout
    while True:
        began = time.monotonic()
        result = read()
        if done(result):
            return result
        if began > deadline:
            raise Timeout('%s: not done after %d s (last: %s)' % (
                what, timeout, str(result)[:300]))
        time.sleep(max(0.0, POLL - (time.monotonic() - began)))


@dataclasses.dataclass
class Disk:
    """An image file to upload and the raw bytes a volume must hold."""
    path: str
    raw: str
    disk_format: str
    virtual_size: int


#: scenario -> (disk format, Glance store, method of Runner).
SCENARIOS = {
    'clone': ('raw', 'ceph', 'first_create'),
    'first-raw': ('raw', 'local', 'first_create'),
    'first-qcow2': ('qcow2', 'local', 'first_create'),
    'second-raw': ('raw', 'local', 'second_create'),
    'storm': ('raw', 'local', 'storm'),
    'nova-bfv': ('raw', 'local', 'nova_boot'),
}


class Runner:
    """Runs scenarios on a running :class:`environment.Environment`."""

    def __init__(self, env: environment.Environment, disks: dict[str, Disk],
                 volume_gb: int, concurrent: int = 10, verify: bool = True,
                 timeout: float = 900) -> None:
        self.env = env
        self.disks = disks
        self.volume_gb = volume_gb
        self.concurrent = concurrent
        self.verify = verify
        self.timeout = timeout
        self.pools = {b.name: b.pool for b in env.backends}
        self.bootcache = {b.name for b in env.backends
                          if b.driver == environment.OUR_DRIVER}
        self._local = threading.local()
        self._servers: list[str] = []  # booted and not yet deleted
        self.glance = clients.glance(env)

    def _compute(self, *args: Any, **kwargs: Any) -> Any:
        return self.env.compute(*args, user=USER, **kwargs)

    # -- set-up -------------------------------------------------------------
    def prepare(self) -> None:
        """A volume type per backend (``volume_backend_name``), and the
        flavor of the boot-from-volume servers."""
        existing = {t.name for t in self.cinder.volume_types.list()}
        for name in self.pools:
            if name not in existing:
                volume_type = self.cinder.volume_types.create(name)
                volume_type.set_keys({'volume_backend_name': name})
        self._compute('POST', '/flavors', {'flavor': {
            'name': FLAVOR, 'id': FLAVOR, 'ram': 64, 'vcpus': 1,
            'disk': 0}}, ok=(200, 409))

    def warm_up(self, disk: Disk) -> None:
        """One create from a small image on each backend, untimed: the
        first use of a backend starts what every later create reuses
        (Cinder's privsep daemon for upstream's download, librados
        connections), as in a cinder-volume that has been running."""
        image = clients.upload_image(self.glance, disk.path, 'raw', 'local',
                                     'bench-warm-up')
        try:
            for driver in self.pools:
                try:
                    status = self.create(
                        driver, image['id'], 'bench-warm-up')[2]
                finally:
                    self.clean_up(driver, image['id'])
                if status != 'available':
                    raise RuntimeError('warm-up create on %s: %s' % (
                        driver, status))
        finally:
            self.glance.images.delete(image['id'])

    @property
    def cinder(self) -> Any:
        """This thread's cinderclient."""
        if not hasattr(self._local, 'cinder'):
            self._local.cinder = clients.cinder(self.env, USER)
        return self._local.cinder

    # -- one scenario -------------------------------------------------------
    def run(self, scenario: str, drivers: Sequence[str],
            round_no: int) -> list[Sample]:
        """``scenario`` with each driver in turn on one fresh image; every
        volume, server, cache entry and the image removed afterwards."""
        disk_format, store, method = SCENARIOS[scenario]
        disk = self.disks[disk_format]
        image = clients.upload_image(
            self.glance, disk.path, disk_format, store,
            'bench-%s-r%d' % (scenario, round_no))
        samples = []
        try:
            for driver in drivers:
                before = self.env.downloads(image['id'])
                sample = Sample(scenario, driver)
                try:
                    getattr(self, method)(sample, image['id'], disk)
                except Timeout as e:
                    sample.ok, sample.detail = False, str(e)
                finally:
                    self.clean_up(driver, image['id'])
                sample.downloads = self.env.downloads(image['id']) - before
                samples.append(sample)
        finally:
            self.glance.images.delete(image['id'])
        return samples

    # -- the scenarios --------------------------------------------------------
    def first_create(self, sample: Sample, image_id: str, disk: Disk) -> None:
        volume_id, sample.seconds, status, cpu = self.create(
            sample.driver, image_id, 'bench-first')
        sample.extra['cpu'] = cpu
        sample.ok, sample.detail = self.check([volume_id], [status],
                                              sample.driver, disk)

    def second_create(self, sample: Sample, image_id: str,
                      disk: Disk) -> None:
        first, first_seconds, first_status, _cpu = self.create(
            sample.driver, image_id, 'bench-first')
        second, sample.seconds, status, cpu = self.create(
            sample.driver, image_id, 'bench-second')
        sample.extra['cpu'] = cpu
        sample.extra['first_seconds'] = first_seconds
        sample.ok, sample.detail = self.check(
            [first, second], [first_status, status], sample.driver, disk)

    def _signed_in_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """``concurrent`` threads, each already holding its Keystone token
        and clients.  A user's client has a token before it calls the API
        (the CLI authenticates first, Nova forwards the user's token): the
        timed window of a storm starts at the API calls, not at ten
        password checks in Keystone (bcrypt; they took 3-6 s of a storm's
        window when each pool thread signed in after the clock started)."""
        pool = concurrent.futures.ThreadPoolExecutor(self.concurrent)
        # Every task waits for all others: one task per thread, so every
        # thread of the pool signs in here.
        all_started = threading.Barrier(self.concurrent)

        def sign_in(_i: int) -> None:
            assert self.env.identity is not None
            self.env.identity.session(USER).get_token()
            self.cinder  # noqa: B018 -- builds this thread's client
            all_started.wait(timeout=120)

        list(pool.map(sign_in, range(self.concurrent)))
        return pool

    def storm(self, sample: Sample, image_id: str, disk: Disk) -> None:
        with self._signed_in_pool() as pool:
            cpu = self._cpu_window()
            started = time.monotonic()
            ids = list(pool.map(
                lambda i: self._post_volume(sample.driver, image_id,
                                            'bench-storm-%d' % i),
                range(self.concurrent)))
        finals = self.wait_final(ids, started)
        sample.extra['cpu'] = cpu.close()
        sample.each = [finals[v][1] for v in ids]
        sample.seconds = max(sample.each)
        sample.ok, sample.detail = self.check(
            ids, [finals[v][0] for v in ids], sample.driver, disk)

    def nova_boot(self, sample: Sample, image_id: str, disk: Disk) -> None:
        """``concurrent`` servers booted from volumes made from the image
        (one ``POST /servers`` each, all at once), the volumes of the
        driver's type."""
        def boot(i: int) -> str:
            server = self._compute('POST', '/servers', {'server': {
                'name': 'bench-%s-%d' % (sample.driver, i),
                'flavorRef': FLAVOR, 'networks': 'none',
                'block_device_mapping_v2': [{
                    'boot_index': 0, 'uuid': image_id,
                    'source_type': 'image', 'destination_type': 'volume',
                    'volume_size': self.volume_gb,
                    'volume_type': sample.driver,
                    'delete_on_termination': True}]}})['server']['id']
            self._servers.append(server)
            return server

        with self._signed_in_pool() as pool:
            cpu = self._cpu_window()
            started = time.monotonic()
            servers = list(pool.map(boot, range(self.concurrent)))
        settled: dict[str, tuple[str, float]] = {}

        def read() -> dict:
            # The index (not the detail) of servers: the detail asks
            # Neutron for security groups.
            for status in ('ACTIVE', 'ERROR'):
                found = self._compute('GET', '/servers?status=' + status)
                now = time.monotonic()
                for server in {s['id'] for s in found['servers']}:
                    if server in servers:
                        settled.setdefault(server, (status, now - started))
            return settled

        # Until every server is ACTIVE or ERROR: one failed build must not
        # cut the others short.
        poll(read, lambda r: len(r) == len(servers), self.timeout,
             'servers ACTIVE or ERROR')
        sample.extra['cpu'] = cpu.close()
        sample.each = [settled[s][1] if settled[s][0] == 'ACTIVE'
                       else float('nan') for s in servers]
        sample.seconds = max(t for _status, t in settled.values())
        active = {s for s in servers if settled[s][0] == 'ACTIVE'}
        results = [self._build_result(s) for s in servers]
        sample.extra['built'] = sum(not r and s in active
                                    for s, r in zip(servers, results))
        # A failed build can still end its event in "Success" (the build
        # catches the error and sets the server to ERROR): ERROR counts.
        problems = ['server %s: ERROR' % s for s in servers
                    if s not in active] + [r for r in results if r]
        volumes = [a['volumeId'] for s in servers for a in self._compute(
            'GET', '/servers/%s/os-volume_attachments' % s)[
                'volumeAttachments']]
        if len(volumes) != len(servers):
            problems.append('%d volumes attached to %d servers' % (
                len(volumes), len(servers)))
        statuses = [self.cinder.volumes.get(v).status for v in volumes]
        ok, detail = self.check(volumes, statuses, sample.driver, disk,
                                expected_status='in-use')
        sample.ok = ok and not problems
        sample.detail = '; '.join(problems + [detail])

    def _build_result(self, server: str) -> str:
        """'' when the server's build action succeeded, else why not."""
        path = '/servers/%s/os-instance-actions' % server
        for action in self._compute('GET', path)['instanceActions']:
            events = self._compute('GET', '%s/%s' % (
                path, action['request_id']))['instanceAction']['events']
            for event in events:
                if event['event'] == 'compute__do_build_and_run_instance':
                    if event.get('result') == 'Success':
                        return ''
                    return 'server %s build: %s' % (server,
                                                    event.get('result'))
        return 'server %s: no build event' % server

    # -- Cinder ---------------------------------------------------------------
    def _post_volume(self, driver: str, image_id: str, name: str) -> str:
        return self.cinder.volumes.create(
            self.volume_gb, name=name, volume_type=driver,
            imageRef=image_id).id

    def create(self, driver: str, image_id: str, name: str
               ) -> tuple[str, float, str, dict[str, float]]:
        """(volume id, seconds from the API call to a final status,
        that status, the CPU-seconds of that window by part)."""
        cpu = self._cpu_window()
        started = time.monotonic()
        volume_id = self._post_volume(driver, image_id, name)
        status, seconds = self.wait_final([volume_id], started)[volume_id]
        return volume_id, seconds, status, cpu.close()

    def _cpu_window(self) -> cpu_budget.Window:
        """CPU-seconds from now on, by service (see :mod:`cpu_budget`)."""
        return cpu_budget.Window(self.env.supervisor.sessions())

    def wait_final(self, ids: list[str], started: float
                   ) -> dict[str, tuple[str, float]]:
        """id -> (final status, seconds from ``started`` until a read
        showed it)."""
        finals: dict[str, tuple[str, float]] = {}

        def read() -> dict:
            if len(ids) == 1:
                volumes = [self.cinder.volumes.get(ids[0])]
            else:
                volumes = self.cinder.volumes.list()
            now = time.monotonic()
            for v in volumes:
                if v.id in ids and v.status in FINAL and v.id not in finals:
                    finals[v.id] = (v.status, now - started)
            return finals

        poll(read, lambda f: len(f) == len(ids), self.timeout,
             'volumes %s final' % ids)
        return finals

    def check(self, volume_ids: list[str], statuses: list[str], driver: str,
              disk: Disk, expected_status: str = 'available'
              ) -> tuple[bool, str]:
        """Whether every volume has ``expected_status`` and (with
        ``verify``) holds exactly the image's content."""
        wrong = ['%s %s' % (v, s) for v, s in zip(volume_ids, statuses)
                 if s != expected_status]
        if wrong:
            return False, 'status: %s' % ', '.join(wrong)
        if not self.verify:
            return True, '%d %s' % (len(volume_ids), expected_status)
        from bootcache_testkit.harness import verify
        if not volume_ids:
            return False, 'no volumes'
        with self.env.sandbox.client() as cluster, \
                cluster.open_ioctx(self.pools[driver]) as ioctx:
            for volume_id in volume_ids:
                ok, detail = verify.volume_matches(
                    ioctx, 'volume-%s' % volume_id, disk.raw,
                    disk.virtual_size)
                if not ok:
                    return False, 'volume %s: %s' % (volume_id, detail)
        return True, '%d %s, content verified (%s)' % (
            len(volume_ids), expected_status, detail)

    # -- clean-up -------------------------------------------------------------
    def clean_up(self, driver: str, image_id: str) -> None:
        """Every server and volume of the project gone, and our boot-cache
        entry of the image evicted."""
        servers, self._servers = self._servers, []
        for server in servers:
            self._compute('DELETE', '/servers/%s' % server,
                          ok=(204, 404))
        if servers:
            poll(lambda: {s['id'] for s in self._compute(
                'GET', '/servers')['servers']},
                lambda left: not (left & set(servers)), self.timeout,
                'servers deleted')
        # Nova deletes its volumes (delete_on_termination) on its own.
        for volume in self.cinder.volumes.list():
            if volume.status in ('available', 'error'):
                self.cinder.volumes.delete(volume.id)
            elif volume.status != 'deleting' and not volume.attachments:
                # Still creating after a timeout: only an admin's force
                # delete takes a volume in a transient status.
                self.cinder.volumes.force_delete(volume.id)
        poll(self.cinder.volumes.list, lambda left: not left, self.timeout,
             'volumes deleted')
        if driver in self.bootcache:
            self.evict(driver, image_id)

    def leftovers(self) -> dict[str, list[str]]:
        """RBD images still in the backends' pools and Glance's pool, by
        pool (every scenario removes what it made: expect none)."""
        import rbd
        found = {}
        with self.env.sandbox.client() as cluster:
            for pool in sorted(set(self.pools.values()) | {'images'}):
                with cluster.open_ioctx(pool) as ioctx:
                    names = sorted(rbd.RBD().list(ioctx))
                if names:
                    found[pool] = names
        return found

    def evict(self, driver: str, image_id: str) -> Optional[str]:
        """Remove the image's boot-cache entry from the backend's pool, as
        ``cinder-rbd-bootcache evict`` does (no volume is left to keep it
        in the trash)."""
        import rados

        from cinder_rbd_bootcache.bootcache import catalog
        with self.env.sandbox.client() as cluster, \
                cluster.open_ioctx(self.pools[driver]) as ioctx:
            # The create that populated the entry returned before the entry
            # was published: cinder-volume finishes it in the background and
            # holds the population lock until it is done with it.
            def lock_held() -> bool:
                try:
                    ioctx.stat(catalog.lock_object(image_id))
                except rados.ObjectNotFound:
                    return False
                return True
            poll(lock_held, lambda held: not held, self.timeout,
                 'boot-cache population finished')
            entries = catalog.Catalog(ioctx)
            info = entries.entry(image_id)
            if info is None:
                return None
            return entries.remove(info, 'the bench scenario is over',
                                  wait=self.timeout)
