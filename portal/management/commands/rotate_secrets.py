"""Seal every stored secret again with the newest key of SECRETS_KEYS (key rotation)."""

from django.core.management.base import BaseCommand, CommandError

from portal import encryption


class Command(BaseCommand):
    help = (
        "Re-seal every encrypted value (appliance SSH keys, tokens) with the first key of "
        "SECRETS_KEYS; afterwards the older keys can be removed from SECRETS_KEYS."
    )

    def handle(self, *args, **options):
        try:
            counts = encryption.reseal_all()
        except encryption.SecretError as exc:
            raise CommandError(
                f"{exc} cannot be opened with any key of SECRETS_KEYS: add the key it was sealed "
                "with (after the new one) and run again; nothing was changed"
            ) from None
        for label, count in counts.items():
            self.stdout.write(f"{label}: {count} re-sealed")
        self.stdout.write(
            f"{sum(counts.values())} values re-sealed with the newest key; the other keys of "
            "SECRETS_KEYS may now be removed"
        )
