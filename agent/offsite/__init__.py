"""The appliance's side of off-site copies: replicate to a vault (throttled, resumable),
off-site status, repair of damaged chunks from a vault, and seeding a new store from one.
Uses the store (which holds the key) and the vault's keyless protocol client. Import the
module you need; this file imports nothing.
"""
