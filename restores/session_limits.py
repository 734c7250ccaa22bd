"""At most N appliance sessions at once per user and per customer, across every web process.

A download (a file, a zip, an export image) holds a web thread and an SSH session for as long
as the client reads; a browse or search page holds them while the appliance answers. Without
a bound, one customer's thirty slow zip downloads would take every thread of the portal. So a
request takes a slot (a ``SessionSlot`` row, shared by all processes through the database)
before it opens the appliance session, and gives it back when the session ends: a download
when its streaming response is closed (the last byte sent, or the client gone), a page when
it is rendered. Downloads and pages count separately, each against its own limits
(``BDR_DOWNLOADS_PER_USER`` / ``_PER_CUSTOMER``, ``BDR_BROWSES_PER_USER`` / ``_PER_CUSTOMER``),
so a user with two downloads running can still open folders. The customer is the one whose
appliance is read, so MSP staff count against it too.

Counting is exact across processes: the user's and the customer's rows are locked
(``select_for_update``) while the slots are counted and one is added. A process renews the
slots it holds every ``BDR_SESSION_SLOT_SECONDS / 3`` from a background thread; one killed
(kill -9, OOM) stops renewing, and its slots stop counting ``BDR_SESSION_SLOT_SECONDS`` later.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from portal.models import Customer, User
from restores.models import SessionKind, SessionSlot

log = logging.getLogger(__name__)


class LimitReached(Exception):
    """Too many sessions at once; the message is for people (the page answers 429)."""


def limits(kind: str) -> tuple[int, int]:
    """(per user, per customer) for ``kind``."""
    if kind == SessionKind.DOWNLOAD:
        return settings.BDR_DOWNLOADS_PER_USER, settings.BDR_DOWNLOADS_PER_CUSTOMER
    return settings.BDR_BROWSES_PER_USER, settings.BDR_BROWSES_PER_CUSTOMER


def _lifetime() -> dt.timedelta:
    return dt.timedelta(seconds=settings.BDR_SESSION_SLOT_SECONDS)


def acquire(user: User, customer: Customer, kind: str, *, now: dt.datetime | None = None):
    """Take a slot of ``kind`` for ``user`` reading ``customer``'s appliance, or raise
    LimitReached naming the limit. Slots whose holder stopped renewing them are not counted."""
    now = now or timezone.now()
    per_user, per_customer = limits(kind)
    label = SessionKind(kind).label
    with transaction.atomic():
        # Always user, then customer: two requests never wait for each other in a circle.
        User.objects.select_for_update().filter(pk=user.pk).first()
        Customer.objects.select_for_update().filter(pk=customer.pk).first()
        live = SessionSlot.objects.filter(kind=kind, expires_at__gt=now)
        if live.filter(user=user).count() >= per_user:
            raise LimitReached(
                f"You already have {per_user} {label} in progress, the most one person may "
                "have at once. Wait for one to finish, then try again."
            )
        if live.filter(customer=customer).count() >= per_customer:
            raise LimitReached(
                f"{customer.name} already has {per_customer} {label} in progress (all its "
                "users together), the most at once. Wait for one to finish, then try again."
            )
        slot = SessionSlot.objects.create(
            kind=kind, user=user, customer=customer, started_at=now,
            expires_at=now + _lifetime(), holder=f"{socket.gethostname()}:{os.getpid()}",
        )  # fmt: skip
        SessionSlot.objects.filter(expires_at__lte=now).delete()  # lapsed: no longer count
    _renewer.add(slot.pk)
    return slot


def release(slot: SessionSlot) -> None:
    """Give the slot back (idempotent)."""
    _renewer.discard(slot.pk)
    SessionSlot.objects.filter(pk=slot.pk).delete()


@contextlib.contextmanager
def slot(user: User, customer: Customer, kind: str) -> Iterator[SessionSlot]:
    """A slot held for the block; LimitReached when none is free."""
    held = acquire(user, customer, kind)
    try:
        yield held
    finally:
        release(held)


class _Renewer:
    """This process's slots, and the thread that keeps them alive (one per process: started
    on first use, again after a fork, since threads do not survive one)."""

    def __init__(self):
        self.ids: set[int] = set()
        self.lock = threading.Lock()
        self.pid = None

    def add(self, pk: int) -> None:
        with self.lock:
            self.ids.add(pk)
            if self.pid != os.getpid():
                self.pid = os.getpid()
                name = "bdr-session-slots"
                threading.Thread(target=self._run, name=name, daemon=True).start()

    def discard(self, pk: int) -> None:
        with self.lock:
            self.ids.discard(pk)

    def _run(self) -> None:
        while True:
            time.sleep(settings.BDR_SESSION_SLOT_SECONDS / 3)
            with self.lock:
                ids = list(self.ids)
            if ids:
                self.renew(ids)

    @staticmethod
    def renew(ids: list[int]) -> None:
        try:
            close_old_connections()
            expires = timezone.now() + _lifetime()
            SessionSlot.objects.filter(pk__in=ids).update(expires_at=expires)
        except Exception:  # the database away for a moment: renew next time
            log.warning("could not renew %d session slots", len(ids), exc_info=True)
        finally:
            connection.close()


_renewer = _Renewer()
