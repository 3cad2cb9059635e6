"""Boot-cache entries are not volumes: Cinder's manage-existing API
neither takes one over nor lists one as safe to manage.

An entry (or a half-built one) is the cache's: every clone of its Glance
image depends on it, and ``manage`` would rename it
(``catalog.why_not_manageable``).
"""

from __future__ import annotations

from cinder import exception

from cinder_rbd_bootcache.bootcache import catalog


def refuse_entry(existing_ref: dict) -> None:
    """Raise ManageExistingInvalidReference when ``existing_ref`` names a
    boot-cache entry."""
    reason = catalog.why_not_manageable(existing_ref.get('source-name'))
    if reason:
        raise exception.ManageExistingInvalidReference(
            existing_ref=existing_ref, reason=reason)


def mark_entries(found: list[dict]) -> list[dict]:
    """``found`` (a ``get_manageable_volumes`` list) with each boot-cache
    entry marked not safe to manage, and why."""
    for item in found:
        reason = catalog.why_not_manageable(
            item['reference'].get('source-name'))
        if reason and item.get('safe_to_manage'):
            item['safe_to_manage'] = False
            item['reason_not_safe'] = reason
    return found
