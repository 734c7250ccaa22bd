"""Getting data back out of a point: random-access reader, filesystems and files, image
export, the NBD server, bare-metal send and its receiver.

This file imports nothing: ``agent.restore.receiver`` runs on a bare-metal target with the
standard library only.
"""
