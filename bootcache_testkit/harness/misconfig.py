"""Misconfigured Ceph settings of a backend on the sandbox, one per case.

Each case is the backend options (cinder.conf) that make one check of
``ceph_preflight`` fail, the name of that check, and the start of the one
line it must answer with.  The CLI tests run the command on them, the
driver tests start cinder-volume's driver on them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

#: Users with caps too narrow for the driver, made once per sandbox:
#: name -> caps (``auth get-or-create``).  "reader" may read its own caps
#: ("auth get"), so its missing pool shows in the caps check.
USERS = {
    'nomon': ['osd', 'profile rbd pool=volumes'],
    'readonly': ['mon', 'profile rbd',
                 'osd', 'profile rbd-read-only pool=volumes'],
    'noexec': ['mon', 'profile rbd', 'osd', 'allow rw pool=volumes'],
    'reader': ['mon', 'profile rbd, allow command "auth get"',
               'osd', 'profile rbd pool=volumes'],
}


@dataclasses.dataclass(frozen=True)
class Case:
    #: the doctor check that fails (later ones are skipped)
    check: str
    #: the error line starts with this, after ``str.format`` with
    #: ``conf`` (the sandbox's ceph.conf), ``dir`` (the sandbox's
    #: directory), ``tmp`` (the test's directory), ``fsid``
    line: str
    #: backend options, formatted as ``line`` is
    options: dict


CASES = {
    'missing rbd_ceph_conf': Case(
        'rbd_ceph_conf', 'rbd_ceph_conf = {tmp}/no/ceph.conf: no such file.',
        {'rbd_ceph_conf': '{tmp}/no/ceph.conf'}),
    'missing rbd_keyring_conf': Case(
        'rbd_keyring_conf',
        'rbd_keyring_conf = {tmp}/no.keyring: no such file.',
        {'rbd_keyring_conf': '{tmp}/no.keyring'}),
    'unknown rbd_user': Case(
        'keyring', 'keyring (in {conf}) = {dir}/client.cindr.keyring: no '
        'keyring for client.cindr: {dir}/client.cindr.keyring does not '
        'exist.', {'rbd_user': 'cindr'}),
    'missing keyring named in ceph.conf': Case(
        'keyring', 'keyring (in {tmp}/missing-keyring.conf) = '
        '{tmp}/nowhere.keyring: no keyring for client.cinder',
        {'rbd_ceph_conf': '{tmp}/missing-keyring.conf'}),
    'keyring without the user': Case(
        'keyring', 'keyring (in {tmp}/other-keyring.conf) = '
        '{dir}/client.admin.keyring: keyring {dir}/client.admin.keyring '
        'holds no key for client.cinder.',
        {'rbd_ceph_conf': '{tmp}/other-keyring.conf'}),
    'wrong key': Case(
        'authentication', 'rbd_user = cinder: the monitors refused the key '
        'of client.cinder in {tmp}/wrong.keyring',
        {'rbd_ceph_conf': '{tmp}/wrong-key.conf'}),
    'no mon caps': Case(
        'authentication', 'rbd_user = nomon: the monitors refused the key '
        'of client.nomon', {'rbd_user': 'nomon'}),
    'unreachable monitors': Case(
        'monitors', 'rbd_ceph_conf = {tmp}/no-monitor.conf: no monitor of '
        'its mon_host (v2:127.0.0.1:9) answered within 1 s',
        {'rbd_ceph_conf': '{tmp}/no-monitor.conf',
         'rados_connect_timeout': 1}),
    'missing rbd_pool': Case(
        'rbd_pool', 'rbd_pool = volumez: cluster {fsid} has no pool '
        'volumez.', {'rbd_pool': 'volumez'}),
    'missing bootcache_pool': Case(
        'bootcache_pool', 'bootcache_pool = cache: cluster {fsid} has no '
        'pool cache.', {'bootcache_pool': 'cache'}),
    'pool not in caps': Case(
        'caps', 'rbd_user = reader: osd caps "profile rbd pool=volumes" do '
        'not name pool images.',
        {'rbd_user': 'reader', 'bootcache_pool': 'images'}),
    'read-only caps': Case(
        'rbd_pool', 'rbd_user = readonly: Ceph refused to let '
        'client.readonly write objects in pool volumes (rbd_pool): its osd '
        'caps lack \'w\' there.', {'rbd_user': 'readonly'}),
    'caps without x': Case(
        'rbd_pool', 'rbd_user = noexec: Ceph refused to let client.noexec '
        'call object class methods (lock.get_info) on objects in pool '
        'volumes (rbd_pool): its osd caps lack \'x\' there.',
        {'rbd_user': 'noexec'}),
}


def make_users(sandbox: Any) -> None:
    """Create :data:`USERS` with keyrings where the sandbox's ceph.conf
    looks (``keyring = DIR/$name.keyring``)."""
    with sandbox.admin_client() as cluster:
        for name, caps in USERS.items():
            sandbox._write_keyring(
                cluster, 'client.%s' % name, None, caps,
                path=os.path.join(sandbox.directory,
                                  'client.%s.keyring' % name))


def remove_users(sandbox: Any) -> None:
    from cinder_rbd_bootcache.ceph import api as ceph
    with sandbox.admin_client() as cluster:
        for name in USERS:
            ceph.mon_command_text(cluster, 'auth rm',
                                  entity='client.%s' % name)
            os.unlink(os.path.join(sandbox.directory,
                                   'client.%s.keyring' % name))


def write_files(sandbox: Any, tmp: str) -> None:
    """The ceph.conf copies and the keyring the cases name, in ``tmp``."""
    with open(sandbox.conf_path) as f:
        conf = f.read()
    wrong = os.path.join(tmp, 'wrong.keyring')
    with open(wrong, 'w') as f:
        # client.cinder, with a key the cluster does not know.
        f.write('[client.cinder]\n\tkey = '
                'AQBzwUdnAAAAABAAtd2Fz2ARzfTd+zx9q2jn3w==\n')
    keyring = 'keyring = %s/$name.keyring' % sandbox.directory
    copies = {
        'missing-keyring.conf': conf.replace(
            keyring, 'keyring = %s/nowhere.keyring' % tmp, 1),
        'other-keyring.conf': conf.replace(
            keyring, 'keyring = %s' % sandbox.admin_keyring, 1),
        'wrong-key.conf': conf.replace(keyring, 'keyring = %s' % wrong, 1),
        'no-monitor.conf': '\n'.join(
            'mon host = v2:127.0.0.1:9' if line.startswith('mon host')
            else line for line in conf.splitlines()) + '\n',
    }
    for name, text in copies.items():
        assert text != conf, name
        with open(os.path.join(tmp, name), 'w') as f:
            f.write(text)


def fill(text: str, sandbox: Any, tmp: str) -> str:
    return text.format(conf=sandbox.conf_path, dir=sandbox.directory,
                       tmp=tmp, fsid=sandbox.fsid)


def options(case: Case, sandbox: Any, tmp: str) -> dict:
    return {key: fill(value, sandbox, tmp) if isinstance(value, str)
            else value for key, value in case.options.items()}
