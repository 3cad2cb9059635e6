"""encrypted_volumes: which volumes it takes, and their key."""

from cinder import exception
import pytest

from cinder_rbd_bootcache.encryption import luks_header
from cinder_rbd_bootcache.encryption import volumes as encrypted_volumes


def spec(**changes):
    base = {'provider': 'luks', 'control_location': 'front-end',
            'cipher': 'aes-xts-plain64', 'key_size': 256,
            'encryption_key_id': 'k1'}
    base.update(changes)
    return base


@pytest.mark.parametrize('provider', [
    'luks', 'nova.volume.encryptors.luks.LuksEncryptor',
    'os_brick.encryptors.luks.LuksEncryptor', 'LuksEncryptor'])
def test_luks_front_end_is_ours_by_any_of_its_names(provider):
    assert encrypted_volumes.why_not(spec(provider=provider)) is None


@pytest.mark.parametrize('changes,words', [
    ({'provider': 'luks2'}, 'provider luks2'),
    ({'provider': 'plain'}, 'provider plain'),
    ({'provider': 'nova.volume.encryptors.cryptsetup.CryptsetupEncryptor'},
     'provider plain'),
    ({'control_location': 'back-end'}, 'control_location back-end'),
    ({'cipher': None}, 'no cipher'),
])
def test_everything_else_stays_upstreams(changes, words):
    assert words in encrypted_volumes.why_not(spec(**changes))


def test_key_is_the_hex_of_the_key_managers_bytes(monkeypatch):
    class Key:
        def get_encoded(self):
            return b'\x01\xfe'

    class Manager:
        def get(self, context, key_id):
            assert key_id == 'k1'
            return Key()
    monkeypatch.setattr(encrypted_volumes.castellan_key_manager, 'API',
                        lambda conf: Manager())
    key = encrypted_volumes.luks_key(None, spec())
    assert (key.cipher_alg, key.cipher_mode, key.ivgen_alg,
            key.passphrase) == ('aes-256', 'xts', 'plain64', '01fe')
    assert '01fe' not in repr(key)


def test_unreachable_key_manager_is_a_key_manager_error(monkeypatch):
    class Manager:
        def get(self, context, key_id):
            raise ConnectionError('barbican at http://kms:9311 refused')
    monkeypatch.setattr(encrypted_volumes.castellan_key_manager, 'API',
                        lambda conf: Manager())
    with pytest.raises(exception.KeyManagerError, match='refused'):
        encrypted_volumes.luks_key(None, spec())


def test_cipher_without_iv_mode_is_an_invalid_volume_type():
    with pytest.raises(exception.InvalidVolumeType):
        encrypted_volumes.luks_key(None, spec(cipher='aes-xts'))


def test_without_cryptsetup_encrypted_volumes_stay_upstreams(monkeypatch):
    monkeypatch.setattr(luks_header, 'available', lambda: False)
    assert 'cryptsetup' in encrypted_volumes.why_not(spec())


@pytest.mark.parametrize('changes,disable_sparse,enabled,words', [
    ({}, False, True, None),
    ({'provider': 'luks2'}, False, True, 'provider luks2'),
    ({'provider': 'luks2'}, True, False, 'provider luks2'),
    ({}, True, True, 're-imaging'),
    ({}, False, False, 'bootcache_enabled is off'),
])
def test_which_encrypted_volumes_are_written_from_the_cache(
        changes, disable_sparse, enabled, words):
    reason = encrypted_volumes.why_not_from_cache(
        spec(**changes), boot_cache_enabled=enabled,
        disable_sparse=disable_sparse)
    if words is None:
        assert reason is None
    else:
        assert words in reason
