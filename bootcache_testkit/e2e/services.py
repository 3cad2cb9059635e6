"""RabbitMQ, MariaDB, Glance, Cinder, Placement and Nova, each started on
127.0.0.1.

One function per service: it writes the service's configuration under the
environment's directory, starts it with the :class:`Supervisor`, and waits
until it answers.  Nothing is installed system-wide and nothing listens
beyond the loopback interface; the Debian packages' own services stay off.

Why MariaDB and not sqlite: cinder-api, cinder-scheduler, cinder-volume
and glance-api write to their databases at the same time, and sqlite
refuses concurrent writers ("database is locked"), as the in-process
harness already found.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from typing import Any
from typing import NamedTuple
from typing import Sequence

from bootcache_testkit.e2e.processes import free_port
from bootcache_testkit.e2e.processes import ServiceError
from bootcache_testkit.e2e.processes import Supervisor
from bootcache_testkit.e2e.processes import tail
# Encrypted volume types: Cinder's fixed-key manager, the harness's key.
from bootcache_testkit.harness import encryption

#: Worker processes of glance-api and cinder-api, as devstack runs them
#: (stackrc's API_WORKERS: a quarter of the CPUs, at least two).  With one
#: cinder-api worker a storm of ten creates queued behind one process's
#: token checks and quota reservations for seconds before any volume
#: driver saw a request.  Keystone keeps one worker: its cache is
#: in-process (``identity.start``), and a role taken away must be seen by
#: the next token check.
API_WORKERS = max((os.cpu_count() or 1) // 4, 2)

#: glance-api's ``default_backend``: the rbd store.
GLANCE_DEFAULT_STORE = 'ceph'
# erlang-base's own link, not erts-<version>/bin: survives Erlang updates.
EPMD = '/usr/bin/epmd'


def _bin(name: str) -> str:
    """A console script of this environment's venv."""
    return os.path.join(os.path.dirname(sys.executable), name)


def _serve_wsgi(supervisor: Supervisor, name: str, port: int, app: str,
                env: dict, threads: int, options: tuple = (),
                workers: int = 1) -> str:
    """A WSGI application under gunicorn (``workers`` processes of
    ``threads`` threads) on 127.0.0.1:``port``; returns its URL once it
    listens."""
    supervisor.start(name, [
        _bin('gunicorn'), '--bind', '127.0.0.1:%d' % port,
        '--workers', str(workers),
        '--worker-class', 'gthread', '--threads', str(threads)]
        + list(options) + [app], env)
    supervisor.wait_for_port(name, port)
    return 'http://127.0.0.1:%d' % port


def _write(path: str, text: str) -> str:
    """A configuration file only its owner reads: it may hold passwords."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(textwrap.dedent(text).lstrip())
    return path


def rabbitmq(supervisor: Supervisor, directory: str) -> str:
    """A RabbitMQ node of our own (own epmd port, own Erlang cookie);
    returns its transport URL."""
    os.makedirs(directory, exist_ok=True)
    port, dist_port, epmd_port = free_port(), free_port(), free_port()
    _write(os.path.join(directory, 'rabbitmq.conf'), '''
        listeners.tcp.default = 127.0.0.1:%d
        ''' % port)
    _write(os.path.join(directory, 'enabled_plugins'), '[].\n')
    env = {
        'HOME': directory,  # its .erlang.cookie
        'RABBITMQ_NODENAME': 'bootcache_e2e@localhost',
        'RABBITMQ_CONFIG_FILE': os.path.join(directory, 'rabbitmq.conf'),
        'RABBITMQ_ENABLED_PLUGINS_FILE': os.path.join(directory,
                                                      'enabled_plugins'),
        'RABBITMQ_MNESIA_BASE': os.path.join(directory, 'mnesia'),
        'RABBITMQ_LOG_BASE': os.path.join(directory, 'log'),
        'RABBITMQ_DIST_PORT': str(dist_port),
        'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS':
            '-kernel inet_dist_use_interface {127,0,0,1}',
        'ERL_EPMD_PORT': str(epmd_port),
        'ERL_EPMD_ADDRESS': '127.0.0.1',
    }
    supervisor.start('rabbitmq', ['/usr/lib/rabbitmq/bin/rabbitmq-server'],
                     env)
    # epmd daemonizes out of the node's process group: stop it by port.
    supervisor.on_stop(lambda: supervisor.run(
        'rabbitmq', [EPMD, '-port', str(epmd_port), '-kill']))
    supervisor.wait_for_port('rabbitmq', port, timeout=120)
    return 'rabbit://guest:guest@127.0.0.1:%d/' % port


def mariadb(supervisor: Supervisor, directory: str,
            databases: tuple = ('cinder', 'glance')) -> dict[str, str]:
    """A MariaDB server on its own data directory; returns a connection
    URL per database."""
    data = os.path.join(directory, 'data')
    os.makedirs(directory, exist_ok=True)
    supervisor.run('mariadb', ['mariadb-install-db', '--no-defaults',
                               '--datadir=%s' % data, '--user=root',
                               '--auth-root-authentication-method=normal',
                               '--skip-test-db'])
    port = free_port()
    supervisor.start('mariadb', [
        '/usr/sbin/mariadbd', '--no-defaults', '--datadir=%s' % data,
        '--socket=%s' % os.path.join(directory, 'mariadb.sock'),
        '--port=%d' % port, '--bind-address=127.0.0.1', '--user=root',
        '--pid-file=%s' % os.path.join(directory, 'mariadb.pid'),
        '--log-error=%s' % supervisor.log('mariadb-server'),
        '--max-connections=500'])
    supervisor.wait_for_port('mariadb', port)
    statements = ''.join('CREATE DATABASE %s; ' % name for name in databases)
    supervisor.run('mariadb', ['mariadb', '--no-defaults', '-h', '127.0.0.1',
                               '-P', str(port), '-u', 'root', '-e',
                               statements])
    return {name: 'mysql+pymysql://root@127.0.0.1:%d/%s' % (port, name)
            for name in databases}


def rabbitmq_consumers(supervisor: Supervisor) -> dict[str, int]:
    """Queue name -> how many consumers it has, on the environment's
    RabbitMQ node (``rabbitmqctl`` with the node's own cookie and epmd
    port)."""
    env = supervisor.environ('rabbitmq')
    done = subprocess.run(
        ['/usr/lib/rabbitmq/bin/rabbitmqctl', '-n',
         env['RABBITMQ_NODENAME'], 'list_queues', 'name', 'consumers',
         '--formatter', 'json', '-q'],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, **env))
    if done.returncode:
        return {}
    return {q['name']: int(q['consumers']) for q in json.loads(done.stdout)}


def glance(supervisor: Supervisor, directory: str, sandbox: Any,
           database: str, identity: Any, transport_url: str = '') -> str:
    """glance-api (gunicorn: Glance 33 has no standalone server) with an
    rbd store on the sandbox's ``images`` pool and a file store, behind
    keystonemiddleware.  Images' locations are shown neither in the image
    (``show_image_direct_url``) nor as a list
    (``show_multiple_locations``), as 2026 deployments run it: only a
    user with the ``service`` role reads them, through the locations API
    (OSSN-0065).  With ``transport_url``, it publishes its notifications
    (``image.activate``, ``image.delete``...) there, on topic
    ``notifications``, as a cloud whose services consume them runs it.
    Returns its endpoint."""
    os.makedirs(directory, exist_ok=True)
    port = free_port()
    paste = os.path.join(sys.prefix, 'etc', 'glance', 'glance-api-paste.ini')
    _write(os.path.join(directory, 'glance-api.conf'), f'''
        [DEFAULT]
        enabled_backends = ceph:rbd, local:file
        show_image_direct_url = false
        show_multiple_locations = false
        log_file = {supervisor.log('glance-api.app')}
        worker_self_reference_url = http://127.0.0.1:{port}
        [database]
        connection = {database}
        [paste_deploy]
        flavor = keystone
        config_file = {paste}
        [glance_store]
        default_backend = {GLANCE_DEFAULT_STORE}
        [ceph]
        rbd_store_pool = images
        rbd_store_user = admin
        rbd_store_ceph_conf = {sandbox.conf_path}
        rbd_store_chunk_size = 4
        [local]
        filesystem_store_datadir = {directory}/images
        [os_glance_staging_store]
        filesystem_store_datadir = {directory}/staging
        [os_glance_tasks_store]
        filesystem_store_datadir = {directory}/tasks
        [oslo_concurrency]
        lock_path = {directory}/locks
        [image_format]
        require_image_format_match = false
        ''')
    with open(os.path.join(directory, 'glance-api.conf'), 'a') as f:
        f.write(identity.authtoken('glance', 'image'))
        if transport_url:
            f.write('[oslo_messaging_notifications]\ndriver = messagingv2\n'
                    'transport_url = %s\n' % transport_url)
    env = {'OS_GLANCE_CONFIG_DIR': directory}
    supervisor.run('glance-manage', [
        _bin('glance-manage'), '--config-file',
        os.path.join(directory, 'glance-api.conf'), 'db', 'sync'], env)
    # Access lines in glance-api.log: the tests count image downloads.
    return _serve_wsgi(supervisor, 'glance-api', port,
                       'glance.wsgi.api:application', env, threads=8,
                       options=('--timeout', '600', '--access-logfile', '-'),
                       workers=API_WORKERS)


class BackendSection(NamedTuple):
    """One backend section of cinder.conf: its name (also its
    ``volume_backend_name``), driver, RBD pool and extra options."""
    name: str
    driver: str
    pool: str
    options: tuple[tuple[str, str], ...] = ()


def _backend_section(backend: BackendSection, sandbox: Any) -> str:
    lines = ['[%s]' % backend.name,
             'volume_driver = %s' % backend.driver,
             'volume_backend_name = %s' % backend.name,
             'rbd_pool = %s' % backend.pool,
             'rbd_ceph_conf = %s' % sandbox.conf_path,
             'rbd_user = %s' % sandbox.client_name,
             'rados_connect_timeout = 10']
    lines += ['%s = %s' % option for option in backend.options]
    return '\n'.join(lines) + '\n'


def _backup_options(pool: str, sandbox: Any) -> str:
    """cinder.conf's [DEFAULT] options of cinder-backup's Ceph driver,
    as a Ceph cloud sets them (devstack's lib/cinder_backups/ceph)."""
    return textwrap.dedent(f'''
        [DEFAULT]
        backup_driver = cinder.backup.drivers.ceph.CephBackupDriver
        backup_ceph_conf = {sandbox.conf_path}
        backup_ceph_user = {sandbox.client_name}
        backup_ceph_pool = {pool}
        backup_ceph_chunk_size = 4194304
        ''')


def _with_etc_ceph(directory: str, sandbox: Any) -> list[str]:
    """The prefix of a command that sees ``directory`` as /etc/ceph,
    holding the sandbox's ``ceph.conf`` and the client's keyring where
    os-brick's RBD connector looks for it
    (``/etc/ceph/<cluster>.client.<user>.keyring``: Cinder sends no
    keyring in a connection, OSSN-0085).  cinder-backup attaches volumes
    through that connector; a private mount namespace (``unshare``, as
    root) gives it the files without touching the host's /etc/ceph."""
    os.makedirs(directory, exist_ok=True)
    shutil.copy(sandbox.conf_path, os.path.join(directory, 'ceph.conf'))
    shutil.copy(sandbox.client_keyring, os.path.join(
        directory, 'ceph.client.%s.keyring' % sandbox.client_name))
    os.makedirs('/etc/ceph', exist_ok=True)
    return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
            'mount --bind "$0" /etc/ceph && exec "$@"', directory]


def cinder(supervisor: Supervisor, directory: str, sandbox: Any,
           database: str, transport_url: str, glance_url: str,
           backends: Sequence[BackendSection], identity: Any,
           volume_concurrency: str = 'eventlet',
           backup_pool: str = '') -> tuple[str, str]:
    """cinder-api, cinder-scheduler and cinder-volume, Cinder's own
    console scripts, one cinder-volume with every backend of
    ``backends``, behind keystonemiddleware; with ``backup_pool``, also
    cinder-backup with Cinder's Ceph backup driver into that pool of the
    sandbox (RBD diffs: full, then incremental); ``[glance]`` holds the
    glance service user's credentials, with which Cinder reads images'
    locations (devstack's lib/cinder sets the same).
    ``volume_concurrency`` is cinder-volume's
    (``eventlet``, Cinder 29's default, or ``threading``).  Returns (API
    endpoint, path of cinder.conf)."""
    if volume_concurrency not in ('eventlet', 'threading'):
        raise ValueError('volume_concurrency: eventlet or threading, not %r'
                         % volume_concurrency)
    os.makedirs(directory, exist_ok=True)
    port = free_port()
    conf = _write(os.path.join(directory, 'cinder.conf'), f'''
        [DEFAULT]
        auth_strategy = keystone
        transport_url = {transport_url}
        enabled_backends = {','.join(b.name for b in backends)}
        glance_api_servers = {glance_url}
        allowed_direct_url_schemes = cinder
        state_path = {directory}
        image_conversion_dir = {directory}/conversion
        osapi_volume_listen = 127.0.0.1
        osapi_volume_listen_port = {port}
        osapi_volume_workers = {API_WORKERS}
        api_paste_config = {directory}/api-paste.ini
        # The filters users may list by (name, status, ...), as installed;
        # the default path, /etc/cinder/resource_filters.json, does not
        # exist here, and without it every filter is ignored.
        resource_query_filters_file = {os.path.join(
            sys.prefix, 'etc', 'cinder', 'resource_filters.json')}
        rootwrap_config = {os.path.join(sys.prefix, 'etc', 'cinder',
                                        'rootwrap.conf')}
        scheduler_driver_init_wait_time = 3
        periodic_interval = 10
        backend_stats_polling_interval = 5
        report_interval = 5
        service_down_time = 60
        debug = true
        [database]
        connection = {database}
        [oslo_concurrency]
        lock_path = {directory}/locks
        [coordination]
        backend_url = file://{directory}/coordination
        [key_manager]
        backend = {encryption.KEY_MANAGER}
        fixed_key = {encryption.FIXED_KEY}
        [oslo_messaging_notifications]
        # Cinder's notifications (and the boot cache's
        # image_volume_cache.*) on the bus, topic "notifications".
        driver = messagingv2
        ''')
    with open(conf, 'a') as f:
        f.write(identity.authtoken('cinder', 'block-storage'))
        # devstack's lib/cinder: the glance user, which has the service
        # role Glance's location API asks for and is an admin, so it sees
        # every project's images: with the cinder user (service role
        # only) Glance answered 404 for another project's private image
        # and the create failed (Cinder does not survive a 404 there).
        f.write(identity.auth_options('glance', 'glance'))
        f.write(identity.auth_options('nova', 'cinder'))
        f.write('[service_user]\nsend_service_user_token = true\n')
        f.write(identity.auth_options('service_user', 'cinder').split(
            '\n', 1)[1])
        # Upstream's download path inspects images in Cinder's privsep
        # daemon.  Its default helper, "sudo cinder-rootwrap ...", is not
        # found: sudo's secure_path does not have this venv.  As root,
        # the venv's privsep-helper itself is what rootwrap would run.
        # os-brick's privileged calls (cinder-backup attaching a volume
        # to read it) start their own daemon the same way.
        for context in ('cinder_sys_admin', 'privsep_osbrick'):
            f.write('[%s]\nhelper_command = %s --config-file %s\n'
                    % (context, _bin('privsep-helper'), conf))
        f.write(''.join(_backend_section(b, sandbox) for b in backends))
        if backup_pool:
            f.write(_backup_options(backup_pool, sandbox))
    # Cinder's own api-paste.ini, as installed.
    shutil.copy(os.path.join(sys.prefix, 'etc', 'cinder', 'api-paste.ini'),
                os.path.join(directory, 'api-paste.ini'))
    # Cinder 29's default concurrency (eventlet), as a stock install runs
    # it: cinder-api's own server exists only in that mode.
    env = {'OS_CINDER_DISABLE_EVENTLET_PATCHING': '0'}
    supervisor.run('cinder-manage', [
        _bin('cinder-manage'), '--config-file', conf, 'db', 'sync'], env)
    services = ['cinder-scheduler', 'cinder-volume', 'cinder-api']
    if backup_pool:
        services.insert(2, 'cinder-backup')
    for service in services:
        service_env = env
        if service == 'cinder-volume' and volume_concurrency == 'threading':
            service_env = {'OS_CINDER_DISABLE_EVENTLET_PATCHING': '1'}
        argv = [_bin(service), '--config-file', conf,
                '--log-file', supervisor.log(service + '.app')]
        if service == 'cinder-backup':
            argv = _with_etc_ceph(os.path.join(directory, 'etc-ceph'),
                                  sandbox) + argv
        supervisor.start(service, argv, service_env)
    supervisor.wait_for_port('cinder-api', port)
    return 'http://127.0.0.1:%d' % port, conf


def bootcache_listener(supervisor: Supervisor, conf: str, backend: str,
                       name: str = '') -> str:
    """``cinder-rbd-bootcache listen`` for ``backend``, as the operations
    guide runs it (one per backend, with cinder-volume's cinder.conf);
    returns its service name (``name``, else
    ``bootcache-listen-<backend>``).  It is ready once its pool's queue
    has one more consumer (:func:`wait_for_consumers`)."""
    name = name or 'bootcache-listen-%s' % backend
    supervisor.start(name, [_bin('cinder-rbd-bootcache'), '-v',
                            '--config-file', conf, '--backend', backend,
                            'listen'])
    return name


def wait_for_consumers(supervisor: Supervisor, queue: str, count: int,
                       timeout: float = 120) -> None:
    """Until RabbitMQ's queue ``queue`` has at least ``count``
    consumers (a listener's pool is its queue)."""
    deadline = time.monotonic() + timeout
    while rabbitmq_consumers(supervisor).get(queue, 0) < count:
        supervisor.check_running()
        if time.monotonic() > deadline:
            raise ServiceError('queue %s has no %d consumers after %d s'
                               % (queue, count, timeout))
        time.sleep(1)


def placement(supervisor: Supervisor, directory: str, database: str,
              identity: Any) -> str:
    """placement-api under gunicorn, behind keystonemiddleware.  Returns
    its endpoint."""
    os.makedirs(directory, exist_ok=True)
    port = free_port()
    _write(os.path.join(directory, 'placement.conf'), f'''
        [DEFAULT]
        log_file = {supervisor.log('placement-api.app')}
        [api]
        auth_strategy = keystone
        [placement_database]
        connection = {database}
        ''')
    with open(os.path.join(directory, 'placement.conf'), 'a') as f:
        f.write(identity.authtoken('placement', 'placement'))
    env = {'OS_PLACEMENT_CONFIG_DIR': directory}
    supervisor.run('placement-manage', [
        _bin('placement-manage'), '--config-file',
        os.path.join(directory, 'placement.conf'), 'db', 'sync'], env)
    return _serve_wsgi(supervisor, 'placement-api', port,
                       'placement.wsgi.api:application', env, threads=4)


def empty_neutron(supervisor: Supervisor) -> str:
    """The :mod:`empty_neutron` API under gunicorn; returns its endpoint."""
    return _serve_wsgi(supervisor, 'neutron-api', free_port(),
                       'bootcache_testkit.e2e.empty_neutron:application',
                       {}, threads=2)


def nova(supervisor: Supervisor, directory: str, databases: dict,
         transport_url: str, placement_url: str, glance_url: str,
         cinder_url: str, identity: Any) -> str:
    """nova-api (gunicorn), -conductor, -scheduler and -compute with the
    fake virt driver, one cell, behind keystonemiddleware, an empty
    Neutron (servers can be deleted).  Returns the compute endpoint."""
    os.makedirs(directory, exist_ok=True)
    neutron_url = empty_neutron(supervisor)
    identity.add_service('network', 'neutron', neutron_url)
    port = free_port()
    conf = _write(os.path.join(directory, 'nova.conf'), f'''
        [DEFAULT]
        transport_url = {transport_url}
        compute_driver = fake.FakeDriver
        periodic_fuzzy_delay = 0
        # nova-compute waits for each boot volume to become available,
        # checking every 3 s (the default interval), 60 times by default:
        # 3 minutes, which ten concurrent creates that each download a
        # GiB can exceed here.  Only the patience changes.
        block_device_allocate_retries = 300
        state_path = {directory}
        instances_path = {directory}/instances
        log_file = {directory}/nova-app.log
        [api]
        auth_strategy = keystone
        [wsgi]
        api_paste_config = {directory}/api-paste.ini
        [api_database]
        connection = {databases['nova_api']}
        [database]
        connection = {databases['nova']}
        [oslo_concurrency]
        lock_path = {directory}/locks
        [scheduler]
        discover_hosts_in_cells_interval = 2
        ''')
    with open(conf, 'a') as f:
        f.write(identity.authtoken('nova', 'compute'))
        f.write(identity.auth_options('placement', 'placement'))
        f.write('endpoint_override = %s\n' % placement_url)
        f.write('[glance]\nendpoint_override = %s\n' % glance_url)
        f.write(identity.auth_options('cinder', 'nova'))
        f.write('endpoint_template = %s/v3/%%(project_id)s\n' % cinder_url)
        f.write('[service_user]\nsend_service_user_token = true\n')
        f.write(identity.auth_options('service_user', 'nova').split(
            '\n', 1)[1])
        f.write(identity.auth_options('neutron', 'nova'))
        f.write('endpoint_override = %s\n' % neutron_url)
    # Nova's own api-paste.ini, as installed.
    paste = os.path.join(directory, 'api-paste.ini')
    shutil.copy(os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini'),
                paste)
    env = {'OS_NOVA_CONFIG_FILES': '%s;%s' % (paste, conf)}
    manage = [_bin('nova-manage'), '--config-file', conf]
    supervisor.run('nova-manage', manage + ['api_db', 'sync'], env)
    supervisor.run('nova-manage', manage + [
        'cell_v2', 'map_cell0', '--database_connection',
        databases['nova_cell0']], env)
    supervisor.run('nova-manage', manage + [
        'cell_v2', 'create_cell', '--name', 'cell1', '--verbose'], env)
    supervisor.run('nova-manage', manage + ['db', 'sync'], env)
    for service in ('nova-conductor', 'nova-scheduler'):
        supervisor.start(service, [_bin(service), '--config-file', conf],
                         env)
    # nova-compute reaches the database only through the conductor: its
    # own copy of nova.conf without the database sections.
    with open(conf) as f:
        text = f.read()
    compute_conf = os.path.join(directory, 'nova-cpu.conf')
    with open(compute_conf, 'w') as f:
        f.write(re.sub(r'\[(api_)?database\]\nconnection = [^\n]*\n', '',
                       text))
    supervisor.start('nova-compute', [_bin('nova-compute'), '--config-file',
                                      compute_conf], env)
    # Under a WSGI server nova-api runs on native threads.
    api_env = dict(env, OS_NOVA_DISABLE_EVENTLET_PATCHING='1')
    url = _serve_wsgi(supervisor, 'nova-api', port,
                      'bootcache_testkit.e2e.nova_wsgi:application',
                      api_env, threads=4)
    _map_compute_host(supervisor, manage, env)
    return url


def _map_compute_host(supervisor: Supervisor, manage: list[str], env: dict,
                      timeout: float = 120) -> None:
    """Until nova-compute's host is mapped to cell1, as devstack does it:
    ``cell_v2 discover_hosts`` once the compute node exists.

    The scheduler's periodic discovery (``discover_hosts_in_cells_interval``)
    may map it at the same moment (then ``discover_hosts`` fails on the
    duplicate, and the host is mapped).  It is not enough on its own: a
    service's first periodic run waits a random 0-``periodic_fuzzy_delay``
    s (default 60), and a server created before it runs fails with
    HostMappingNotFound.  Discovering here makes the environment ready
    when ``up()`` returns, whatever the timing.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.check_running()
        try:
            supervisor.run('nova-manage', manage + [
                'cell_v2', 'discover_hosts', '--verbose'], env)
        except ServiceError as exc:
            # The scheduler's discovery mapped the host at the same
            # moment ("Duplicate host mapping"): list_hosts tells.
            if 'Duplicate host mapping' not in str(exc):
                raise
        hosts = supervisor.run('nova-manage', manage + [
            'cell_v2', 'list_hosts'], env)
        if re.search(r'^\|\s*cell1\s*\|', hosts, re.M):
            return
        time.sleep(2)
    raise ServiceError('nova-compute never registered a compute node to '
                       'map to cell1; its log:\n%s' % tail(
                           supervisor.log('nova-compute')))
