"""Every option of the driver, declared once.

All names start with ``bootcache_`` so they never collide with upstream's
``rbd_*`` options in the same backend section.  ``list_opts`` feeds
``oslo-config-generator`` (entry point ``oslo.config.opts``), which writes
``etc/cinder-rbd-bootcache.conf.sample``; never edit the sample by hand.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

BOOTCACHE_OPTS = [
    cfg.ListOpt(
        'bootcache_allowed_clone_pools',
        default=[],
        help='Ceph pools that copy-on-write clones of Glance images may come '
             'from. An rbd:// image location that names any other pool is '
             'not cloned; the image is copied instead. Set it to the pools '
             'of the Glance rbd store (usually "images"). Empty means any '
             'pool of this cluster except the pools this backend stores '
             'volumes in: a location that points at a volume pool could '
             'name another project\'s volume snapshot, and cloning it would '
             'leak that data.'),
    cfg.IntOpt(
        'bootcache_import_writes_in_flight',
        default=8, min=1, max=64,
        help='How many asynchronous librbd writes one image import keeps in '
             'flight. Each is at most one RBD object (rbd_store_chunk_size), '
             'so an import holds at most this many objects of image data in '
             'memory, whatever the size of the image. Raise it when imports '
             'are slower than the network and the OSDs can take more '
             'parallel writes; lower it to bound memory per import.'),
    cfg.IntOpt(
        'bootcache_import_stall_timeout',
        default=120, min=5,
        help='Seconds a single Ceph operation of an image import may take '
             'before the import is aborted (librados rados_osd_op_timeout on '
             'the connection the import uses). A full pool or OSD makes '
             'librbd writes wait for ever; with this limit the volume goes '
             'to error with a message naming the full pool, and the partial '
             'RBD image is removed. Choose it longer than the slowest write '
             'a healthy cluster takes, including OSD recovery.'),
    cfg.StrOpt(
        'bootcache_import_staging',
        default='rbd', choices=['rbd', 'local'],
        help='Where a qcow2, vmdk, vhd, vhdx or vdi image downloaded from '
             'Glance waits for qemu-img, which needs random access to it. '
             '"rbd": streamed (hash-checked, zeros left as holes) into a '
             'temporary RBD image in the pool of the boot-cache entry (of '
             'the volume when the cache is not used), converted from there '
             'and removed; no local disk is needed, and the pool needs room '
             'for one more copy of the image while it is imported. '
             '"local": written to a file in image_conversion_dir, as '
             'Cinder does, which then needs room for the largest image. '
             'Images Glance keeps in this cluster\'s rbd store are '
             'converted from their snapshot either way, with no download.'),
    cfg.BoolOpt(
        'bootcache_enabled',
        default=True,
        help='Keep one verified "golden" RBD image per Glance image in this '
             'backend\'s pool and make every volume from that image a '
             'copy-on-write clone of it: one download per image for the '
             'whole cluster, no internal tenant and no Glance locations '
             'needed. Images Glance keeps on this Ceph cluster (rbd:// '
             'locations) and cinder:// image-volumes are cloned directly '
             'and never cached. Entries stay until evicted by the '
             'bootcache_max_* limits or by the cinder-rbd-bootcache '
             'command. Off: every create from an image that cannot be '
             'cloned imports it again (still streamed, verified), or uses '
             'the image-volume cache if that is enabled.'),
    cfg.StrOpt(
        'bootcache_pool',
        help='RBD pool of the boot-cache entries. Default: rbd_pool, the '
             'pool of this backend\'s volumes. Volumes are always created '
             'in rbd_pool; a separate pool lets operators give the cache '
             'its own quota, and must be readable and writable by '
             'rbd_user.'),
    cfg.IntOpt(
        'bootcache_max_size_gb',
        default=0, min=0,
        help='Most GiB the boot-cache entries of this backend may use '
             '(data written, not provisioned size); 0 is no limit. Beyond '
             'it the least recently used entries are evicted, when an '
             'entry is populated and when the driver refreshes its stats.'),
    cfg.IntOpt(
        'bootcache_max_entries',
        default=0, min=0,
        help='Most boot-cache entries of this backend; 0 is no limit. '
             'Least recently used entries are evicted first.'),
    cfg.IntOpt(
        'bootcache_max_idle_hours',
        default=0, min=0,
        help='Evict a boot-cache entry no volume was created from for this '
             'many hours; 0 keeps entries however long they are unused. An '
             'entry that still has clones moves to the RBD trash (clone '
             'format 2, min compat client mimic or newer) and is removed '
             'with its last clone; with clone format 1 it is kept.'),
    cfg.IntOpt(
        'bootcache_populate_wait',
        default=600, min=1,
        help='Seconds a create waits for another request (of any host) '
             'that is populating the boot-cache entry of the same image, '
             'before it fails. Choose it longer than the download and '
             'import of the largest image you serve.'),
    cfg.IntOpt(
        'bootcache_lock_lease',
        default=30, min=3,
        help='Seconds of the lease on a boot-cache population lock, kept '
             'in Ceph and renewed every third of it while the entry is '
             'built. A process that dies while populating blocks others '
             'for about this long. A shorter lease frees them sooner, but '
             'a populating process whose renewal comes more than two '
             'thirds of it late (a stalled host) loses the lock.'),
    cfg.IntOpt(
        'bootcache_progress_interval',
        default=10, min=1,
        help='Seconds between two progress lines (bytes, percent, rate) in '
             'the log while an image is imported.'),
    cfg.IntOpt(
        'bootcache_luks_pbkdf2_iterations',
        default=600000, min=1000, max=100000000,
        help='PBKDF2-SHA256 iterations of the key slot of each LUKS header '
             'this driver writes (encrypted volumes of a front-end "luks" '
             'type, empty or from an image; cryptsetup luksFormat '
             '--pbkdf-force-iterations). Every unlock of the volume pays '
             'them: Nova at each attach, qemu-img once per writer when the '
             'image is written into the container. The default is the '
             'OWASP 2023 figure for PBKDF2-SHA256 passwords; upstream has '
             'qemu-img choose a count that takes 2 s instead. Stretching '
             'protects passwords people can guess; the passphrase of a '
             'Cinder volume is the hex form of a random key from the key '
             'manager (256 bits with the default key size), which no '
             'iteration count makes harder to guess, so a higher value '
             'only makes attaches and creates slower.'),
    cfg.IntOpt(
        'bootcache_luks_writers',
        default=2, min=1, max=16,
        help='qemu-img processes that write one encrypted volume at once, '
             'each a slice of the image (whole 4 MiB objects). qemu-img '
             'encrypts on one thread, which bounds a single process; each '
             'one more costs a CPU while it runs and one more unlock of the '
             'header (bootcache_luks_pbkdf2_iterations). Raise it when '
             'encrypted creates are CPU-bound and cinder-volume\'s host has '
             'idle cores.'),
    cfg.BoolOpt(
        'bootcache_share_rados_clients',
        default=True,
        help='Keep one connected librados client per Ceph user, ceph.conf '
             'and operation timeout in each cinder-volume process and open '
             'a pool context on it for every operation of this backend, '
             'upstream\'s included, instead of a new client (monitor '
             'session, cephx authentication, maps) per operation, which '
             'saves those round trips on every operation. A client is '
             'replaced when ceph.conf changes, after 5 minutes, and after '
             'an operation on it fails with an error that says the client '
             'itself is broken (blocklisted, shut down, timed out). Off: a '
             'client per operation, as upstream.'),
    cfg.IntOpt(
        'bootcache_glance_check_interval',
        default=60, min=0,
        help='Minutes after which the periodic maintenance (each stats '
             'refresh, every backend_stats_polling_interval seconds) asks '
             'Glance again whether the image of a boot-cache entry still '
             'exists and is active; the entry of an image deleted or '
             'deactivated is retired: never cloned again, removed at once '
             'when no volume depends on it, else with its last clone. This '
             'catches up with Glance notifications no listener heard '
             '(cinder-rbd-bootcache listen not running, a message bus '
             'restart). Without a listener, expect an entry to be retired '
             'at most this interval plus (entries / '
             'bootcache_glance_checks_per_run) stats refreshes after its '
             'image went. Glance is asked as the [glance] service user. '
             '0 never asks.'),
    cfg.IntOpt(
        'bootcache_glance_checks_per_run',
        default=20, min=0,
        help='Most images one maintenance asks Glance about (one image '
             'GET each, least recently confirmed first); the rest wait '
             'for the next stats refresh. Every host sharing the pool '
             'shares the work. Raise it when the cache holds more entries '
             'than this many times the stats refreshes of '
             'bootcache_glance_check_interval; 0 never asks.'),
    cfg.StrOpt(
        'bootcache_warm_policy',
        default='off',
        help='Which images "cinder-rbd-bootcache listen" warms when Glance '
             'announces them (image.activate, image.reactivate, or an '
             'image.update of an active image): "off" none; "public" '
             'images whose visibility is public; "property:NAME" images '
             'whose property NAME is true (true, yes, 1); "tag:NAME" '
             'images tagged NAME. A warm downloads the image once for the '
             'whole backend and holds its size in the pool until evicted, '
             'so the default warms nothing: choose the images whose first '
             'boots must not wait for a download (a property or tag the '
             'image publishers set), and "public" only when the public '
             'images fit within bootcache_max_size_gb. Entries of deleted '
             'or deactivated images are retired whatever the policy.'),
]

_DEFAULTS = {opt.dest: opt.default for opt in BOOTCACHE_OPTS}

#: ``cinder-rbd-bootcache listen``'s options, in their own group.
LISTENER_GROUP = 'bootcache_listener'
LISTENER_OPTS = [
    cfg.StrOpt(
        'transport_url',
        secret=True,
        help='oslo.messaging URL of the bus Glance publishes its '
             'notifications on (glance-api.conf\'s '
             '[oslo_messaging_notifications] transport_url, else its '
             '[DEFAULT] transport_url). Unset: the notification bus of '
             'this cinder.conf ([oslo_messaging_notifications] '
             'transport_url, else [DEFAULT] transport_url), right when '
             'Glance and Cinder share the bus.'),
    cfg.ListOpt(
        'topics',
        default=['notifications'],
        help='Topics Glance publishes its notifications on: '
             'glance-api.conf\'s [oslo_messaging_notifications] topics.'),
    cfg.StrOpt(
        'exchange',
        default='glance',
        help='Exchange Glance publishes its notifications to: '
             'glance-api.conf\'s [DEFAULT] control_exchange, "glance" '
             'unless its operator changed it. Each service publishes to '
             'an exchange of its own (Cinder to "openstack"), so a '
             'listener bound to another exchange hears nothing from '
             'Glance.'),
    cfg.StrOpt(
        'pool',
        help='Listener pool: the listeners of one pool share one queue, '
             'so each event reaches one of them; other consumers '
             '(Ceilometer) keep their own copy. Every host listening for '
             'the same backend must use the same pool, and each backend '
             'its own. Unset: cinder-rbd-bootcache.<backend section>.'),
    cfg.IntOpt(
        'workers',
        default=2, min=1,
        help='Warms and retirements one listener runs at once. A warm '
             'downloads and imports an image (as "cinder-rbd-bootcache '
             'warm"); raise it when many images are published at once and '
             'the host has the bandwidth.'),
]


def register_listener_opts(conf: Any) -> None:
    """Register ``listen``'s options (after cinder.conf is parsed)."""
    conf.register_opts(LISTENER_OPTS, group=LISTENER_GROUP)


def value(configuration: Any, name: str) -> Any:
    """``configuration``'s value of our option ``name``.

    Its default when the configuration does not carry our options: the
    driver adds them in ``__init__``, but code that builds the driver with
    a configuration made for upstream's RBDDriver (Cinder's own unit tests
    use a ``Mock(spec=Configuration)``) must still get upstream's
    behaviour, not an AttributeError.  oslo.config's NoSuchOptError is an
    AttributeError.
    """
    try:
        return getattr(configuration, name)
    except AttributeError:
        return _DEFAULTS[name]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options for oslo-config-generator: the backend section's, and
    the ``listen`` command's group."""
    return [('backend_defaults', BOOTCACHE_OPTS),
            (LISTENER_GROUP, LISTENER_OPTS)]
