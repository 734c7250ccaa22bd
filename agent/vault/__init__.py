"""The vault: a keyless store of sealed blobs off-site (``bdr-agent vault ...``).

It never holds or receives a storage key. It knows blob ids, sizes and the SHA-256 of
every blob's sealed bytes (recorded at upload, so it can check itself for bit rot), which
points (by id) reference which blobs, and keeps sealed indexes and catalogs as opaque
blobs. Import the module you need; this file imports nothing.
"""
