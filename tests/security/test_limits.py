"""Issue 14, item 5: at most N appliance sessions at once per user and per customer.

The limiter on its own (restores/session_limits.py: per user, per customer, downloads and
pages counted apart, a slot given back, a killed process's slots lapsing), then through the
real pages: a download link beyond the limit is a 429 with the reason, and the slot comes
back when the streaming response is closed (the last byte, or the client gone).
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import Role
from restores import services
from restores.models import SessionKind, SessionSlot
from restores.session_limits import LimitReached, acquire, release
from tests import factories as f
from tests.support.database import child_database_url
from tests.support.manage import ROOT, environment
from tests.support.signin import force_login_verified
from tests.support.tenants import BIG, make_tenant

DOWNLOAD, BROWSE = SessionKind.DOWNLOAD, SessionKind.BROWSE


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.BDR_DOWNLOADS_PER_USER, settings.BDR_DOWNLOADS_PER_CUSTOMER = 2, 4
    settings.BDR_BROWSES_PER_USER, settings.BDR_BROWSES_PER_CUSTOMER = 3, 6


def test_one_person_holds_at_most_two_downloads(db, limits_store):
    acme = make_tenant(limits_store, "Acme")
    ann, bob = acme.users[:2]
    first = acquire(ann, acme.customer, DOWNLOAD)
    acquire(ann, acme.customer, DOWNLOAD)
    with pytest.raises(LimitReached, match="You already have 2 downloads in progress"):
        acquire(ann, acme.customer, DOWNLOAD)
    acquire(bob, acme.customer, DOWNLOAD)  # another person of the customer still may
    acquire(ann, acme.customer, BROWSE)  # and Ann may still open folders: counted apart
    release(first)
    acquire(ann, acme.customer, DOWNLOAD)  # a slot given back is free again


def test_one_customer_holds_at_most_four_downloads_whoever_asks(db, limits_store):
    acme, globex = make_tenant(limits_store, "Acme"), make_tenant(limits_store, "Globex")
    tech = f.UserFactory(role=Role.TECHNICIAN)
    for person in acme.users[:2]:
        acquire(person, acme.customer, DOWNLOAD)
        acquire(person, acme.customer, DOWNLOAD)
    for person in (acme.users[2], tech):  # the MSP's staff reading Acme's appliance count too
        with pytest.raises(LimitReached, match="Acme already has 4 downloads in progress"):
            acquire(person, acme.customer, DOWNLOAD)
    acquire(globex.users[0], globex.customer, DOWNLOAD)  # other customers are not touched
    acquire(tech, globex.customer, DOWNLOAD)
    assert SessionSlot.objects.filter(customer=acme.customer).count() == 4


def test_browse_and_search_pages_have_their_own_limits(db, limits_store):
    acme = make_tenant(limits_store, "Acme")
    for _ in range(3):
        acquire(acme.users[0], acme.customer, BROWSE)
    with pytest.raises(LimitReached, match="3 folder and search pages in progress"):
        acquire(acme.users[0], acme.customer, BROWSE)
    for _ in range(3):
        acquire(acme.users[1], acme.customer, BROWSE)
    with pytest.raises(LimitReached, match="Acme already has 6 folder and search pages"):
        acquire(acme.users[2], acme.customer, BROWSE)


def _link(user, point, path="/big.bin") -> str:
    return reverse("restore_download", args=[services.sign_download(user, point, [path], None)])


@pytest.mark.django_db(transaction=True)  # response.close() ends the request, as a server's
def test_a_download_beyond_the_limit_is_429_until_one_is_closed(client, limits_store):
    acme = make_tenant(limits_store, "Acme")
    ann = acme.users[0]
    force_login_verified(client, ann)
    link = _link(ann, acme.point)
    running = [client.get(link), client.get(link)]  # streaming, nothing read yet
    assert [r.status_code for r in running] == [200, 200]
    refused = client.get(link)
    assert refused.status_code == 429
    assert "You already have 2 downloads in progress" in refused.content.decode()
    zip_refused = client.post(reverse("restore_selected", args=[acme.point.pk]),
                              {"paths": ["/Shared/"]}, follow=True)  # fmt: skip
    assert zip_refused.status_code == 429  # a zip is a download like any other
    # The client goes away after the first piece: the server closes the response.
    assert len(next(iter(running[0].streaming_content))) > 0
    running[0].close()
    assert SessionSlot.objects.filter(user=ann).count() == 1
    whole = client.get(link)
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == BIG
    assert SessionSlot.objects.filter(user=ann).count() == 1  # read to the end: given back
    running[1].close()
    assert not SessionSlot.objects.filter(user=ann).exists()


def test_a_browse_page_beyond_the_limit_is_429(client, db, limits_store, settings):
    acme = make_tenant(limits_store, "Acme")
    force_login_verified(client, acme.users[0])
    page = reverse("restore_browse", args=[acme.point.pk])
    assert client.get(page, {"path": "/Shared"}).status_code == 200
    assert not SessionSlot.objects.exists()  # a page gives its slot back when rendered
    for person in acme.users[1:]:
        for _ in range(3):
            acquire(person, acme.customer, BROWSE)  # six pages of others being answered
    busy = client.get(page, {"path": "/Shared"})
    assert busy.status_code == 429 and "Acme already has 6" in busy.content.decode()
    search = client.get(reverse("restore_search", args=[acme.point.pk]), {"q": "price"})
    assert search.status_code == 429


HOLDER = """
import os, sys, time, django
django.setup()
from portal.models import Customer, User
from restores import session_limits
user, customer = User.objects.get(pk=sys.argv[1]), Customer.objects.get(pk=sys.argv[2])
for _ in range(2):
    session_limits.acquire(user, customer, "download")
print("holding", flush=True)
time.sleep(600)
"""


@pytest.mark.django_db(transaction=True)
def test_a_killed_workers_slots_lapse_and_a_live_ones_do_not(limits_store, settings):
    settings.BDR_SESSION_SLOT_SECONDS = 3
    acme = make_tenant(limits_store, "Acme", users=1)
    ann = acme.users[0]
    env = environment(DATABASE_URL=child_database_url(), BDR_SESSION_SLOT_SECONDS="3",
                      DJANGO_SETTINGS_MODULE="portal.settings")  # fmt: skip
    worker = subprocess.Popen([sys.executable, "-c", HOLDER, str(ann.pk), str(acme.customer.pk)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert worker.stdout.readline().strip() == "holding"
        time.sleep(4.5)  # past the slots' lifetime: the live process renewed them
        with pytest.raises(LimitReached):
            acquire(ann, acme.customer, DOWNLOAD)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    with pytest.raises(LimitReached):  # just killed: its slots still count for a moment
        acquire(ann, acme.customer, DOWNLOAD)
    later = timezone.now() + dt.timedelta(seconds=3)
    acquire(ann, acme.customer, DOWNLOAD, now=later)  # then they lapse by themselves
    acquire(ann, acme.customer, DOWNLOAD, now=later)
    assert SessionSlot.objects.filter(user=ann).count() == 2  # and the dead ones are swept
