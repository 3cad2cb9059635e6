"""The pure parts of the end-to-end bench and its environment: the goals
computed from samples, the empty Neutron, the service-token filter."""

import json

import webob

from bootcache_testkit.e2e import bench
from bootcache_testkit.e2e import empty_neutron
from bootcache_testkit.e2e import trusted_auth


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


def test_service_token_gives_the_service_role_and_nothing_else_does():
    seen = []

    @webob.dec.wsgify
    def app(req):
        seen.append(req.headers.get('X-Service-Roles'))
        return webob.Response()

    wrapped = trusted_auth.service_token_filter_factory({})(app)
    webob.Request.blank('/', headers={'X-Service-Token': 't'}).get_response(
        wrapped)
    webob.Request.blank('/', headers={'X-Service-Roles': 'service'}
                        ).get_response(wrapped)
    assert seen == ['service', None]
