"""The pure parts of the end-to-end bench and its environment: the goals
computed from samples, the CPU-seconds of a window and their table, the
empty Neutron, the Keystone options the services are given, the pools
``cinder get-pools --detail`` prints."""

import json
import subprocess
import sys
import threading
import time
import types

from bootcache_testkit.e2e import bench
from bootcache_testkit.e2e import cpu_budget
from bootcache_testkit.e2e import empty_neutron
from bootcache_testkit.e2e import environment
from bootcache_testkit.e2e import identity


def sample(scenario, driver, seconds, downloads=1, ok=True, **extra):
    return dict(round=1, scenario=scenario, driver=driver, seconds=seconds,
                downloads=downloads, ok=ok, detail='', each=[], extra=extra)


def test_goals_ratios_downloads_and_builds():
    samples = [
        sample('first-raw', 'upstream', 9.0), sample('first-raw', 'ours', 3.0),
        sample('first-qcow2', 'upstream', 3.0),
        sample('first-qcow2', 'ours', 2.0),
        sample('second-raw', 'upstream', 8.0, 2),
        sample('second-raw', 'ours', 0.5),
        sample('storm', 'upstream', 40.0, 10), sample('storm', 'ours', 4.0),
        sample('nova-bfv', 'upstream', 90.0, 10),
        sample('nova-bfv', 'ours', 20.0, 2, built=9),
    ]
    found = {g['goal']: g for g in bench.goals(samples, 10)}
    raw = found['first create raw >= 2.5x faster than upstream']
    assert (raw['value'], raw['met']) == (3.0, True)
    qcow2 = found['first create qcow2 >= 1.7x faster than upstream']
    assert (qcow2['value'], qcow2['met']) == (1.5, False)
    second = found["second create >= 10x faster than upstream's second"]
    assert (second['value'], second['met']) == (16.0, True)
    wall = found['storm of 10 (ours): wall <= 1.5x first create (ours)']
    assert (round(wall['value'], 3), wall['met']) == (1.333, True)
    built = found['10 boot-from-volume servers (ours): all built']
    assert (built['value'], built['met']) == (9, False)
    once = found['10 boot-from-volume servers (ours): 1 download']
    assert (once['value'], once['met']) == (2, False)


def test_goals_only_for_scenarios_measured():
    samples = [sample('clone', 'upstream', 1.0, 0),
               sample('clone', 'ours', 1.0, 0)]
    assert bench.goals(samples, 10) == []


def call(app, method, path):
    replies = []
    body = b''.join(app({'REQUEST_METHOD': method, 'PATH_INFO': path},
                        lambda status, headers: replies.append(status)))
    return replies[0], json.loads(body)


def test_empty_neutron_lists_nothing_and_finds_nothing():
    assert call(empty_neutron.application, 'GET', '/v2.0/ports') == (
        '200 OK', {'ports': []})
    assert call(empty_neutron.application, 'GET',
                '/v2.0/extensions.json') == ('200 OK', {'extensions': []})
    status, _body = call(empty_neutron.application, 'GET', '/v2.0/ports/x')
    assert status == '404 Not Found'


def test_service_options_are_keystone_password_auth_with_service_tokens():
    ident = identity.Identity('http://127.0.0.1:5000', {
        'cinder': identity.Account('cinder', 'pw-c', 'service'),
        'demo': identity.Account('demo', 'pw-d', 'demo')})
    text = ident.authtoken('cinder', 'block-storage')
    lines = text.splitlines()
    assert lines[0] == '[keystone_authtoken]'
    for line in ('auth_type = password', 'interface = public',
                 'username = cinder', 'password = pw-c',
                 'project_name = service',
                 'www_authenticate_uri = http://127.0.0.1:5000',
                 'service_token_roles = service',
                 'service_token_roles_required = true'):
        assert line in lines, line
    assert ident.auth_options('glance', 'cinder').startswith('[glance]\n')
    env = ident.environ('demo')
    assert (env['OS_USERNAME'], env['OS_PASSWORD'],
            env['OS_PROJECT_NAME']) == ('demo', 'pw-d', 'demo')


class _Identity:
    """Stands in for the env's Keystone: counts sign-ins per thread."""

    def __init__(self):
        self.signed_in = set()
        self.lock = threading.Lock()
        self._local = threading.local()

    def session(self, _user):
        identity = self

        class Session:
            def get_token(self):
                with identity.lock:
                    identity.signed_in.add(threading.get_ident())
                return 'token'
        if not hasattr(self._local, 'session'):
            self._local.session = Session()
        return self._local.session


def test_storm_pool_threads_sign_in_before_the_clock(monkeypatch):
    from bootcache_testkit.e2e import bench_scenarios
    from bootcache_testkit.e2e import clients
    monkeypatch.setattr(clients, 'cinder', lambda env, user: object())
    runner = object.__new__(bench_scenarios.Runner)
    runner.env = types.SimpleNamespace(identity=_Identity())
    runner.concurrent = 10
    runner._local = threading.local()
    with runner._signed_in_pool() as pool:
        signed_in = set(runner.env.identity.signed_in)
        # Every thread of the pool signed in, before any timed call.
        assert len(signed_in) == 10
        ran_on = set(pool.map(lambda _i: threading.get_ident(), range(10)))
    assert ran_on <= signed_in


def test_cpu_window_counts_a_session_and_its_exited_children():
    # Real processes: a session leader whose child burns CPU and exits
    # inside the window; the leader outlives the window, as a service does.
    burn = ('import subprocess, sys, time; time.sleep(0.2); '
            'subprocess.run([sys.executable, "-c", '
            '"sum(range(3 * 10 ** 7))"]); time.sleep(30)')
    leader = subprocess.Popen([sys.executable, '-c', burn],
                              start_new_session=True)
    try:
        time.sleep(0.1)   # the leader's setsid is done
        window = cpu_budget.Window({leader.pid: 'burner'})
        deadline = time.monotonic() + 20
        while len(_children(leader.pid)) == 0 and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        while _children(leader.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        spent = window.close()
    finally:
        leader.kill()
        leader.wait()
    # The leader itself only sleeps: its figure is its exited child's
    # CPU (cutime).  Other processes named "python" are whatever else
    # the machine runs, so nothing is said of them here.
    assert spent['burner'] >= 0.1
    assert spent[cpu_budget.MACHINE] >= spent['burner'] - 0.05


def _children(pid):
    with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
        return f.read().split()


def test_cpu_table_prints_medians_per_part(capsys):
    cpu = {cpu_budget.MACHINE: 4.0, 'cinder-volume': 2.0, 'ceph-osd': 0.5,
           'mariadbd': 0.25}
    samples = [sample('first-raw', 'ours', 2.0, cpu=cpu),
               sample('first-raw', 'upstream', 5.0)]
    bench.cpu_table(samples, ['first-raw'])
    out = capsys.readouterr().out.splitlines()
    row = next(line for line in out if line.startswith('first-raw'))
    # wall, busy, use (4 CPU-s in 2 s of however many cores), the parts,
    # then "other": what no column shows.
    fields = row.split()
    assert fields[:4] == ['first-raw', 'ours', '2.00', '4.00']
    assert fields[-1] == '1.50'
    # A sample without CPU figures (an aborted one) has no row.
    assert not any(line.split()[:2] == ['first-raw', 'upstream']
                   for line in out)


#: ``cinder get-pools --detail`` with two backends, as python-cinderclient
#: prints it: one table per pool, rows sorted, so ``name`` comes after
#: the ``bootcache_*`` rows.
TWO_POOLS = """\
+-------------------+----------------+
| Property          | Value          |
+-------------------+----------------+
| bootcache_entries | 1              |
| bootcache_hits    | 3              |
| name              | vm@ceph#ceph   |
| timestamp         | 2026-12-07T19: |
+-------------------+----------------+
+-------------------+----------------+
| Property          | Value          |
+-------------------+----------------+
| bootcache_entries | 0              |
| bootcache_hits    | 7              |
| name              | vm@ceph2#ceph2 |
+-------------------+----------------+
"""


def test_pools_keeps_each_tables_rows_with_its_pool():
    found = environment.pools(TWO_POOLS)
    assert found == {
        'vm@ceph#ceph': {'bootcache_entries': '1', 'bootcache_hits': '3',
                         'name': 'vm@ceph#ceph',
                         'timestamp': '2026-12-07T19:'},
        'vm@ceph2#ceph2': {'bootcache_entries': '0', 'bootcache_hits': '7',
                           'name': 'vm@ceph2#ceph2'}}
