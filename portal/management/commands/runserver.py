"""``runserver`` (staticfiles' own) that refuses a public address with the development keys."""

from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand
from django.core.management.base import CommandError

from portal.bind_guard import PublicBindRefused, check_bind


class Command(RunserverCommand):
    def run(self, **options):
        try:
            check_bind(self.addr)
        except PublicBindRefused as exc:
            raise CommandError(str(exc)) from None
        super().run(**options)
