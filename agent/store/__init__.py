"""The datastore: keys, sealed chunks, point indexes, catalogs, backup, retention, gc, verify.

Nothing in here knows about restores, VMs or the portal. Import the module you need
(``agent.store.datastore.Store``, ``agent.store.backup.backup_volume``, ...); this file
imports nothing, so loading one module loads only what that module needs.
"""
