"""Recovery points booted as VMs: qemu and QMP, VM records and their supervisor, backups of
a running VM, boot checks, and the tiny boot sectors the tests and the demo boot."""
