"""End to end through a real Celery worker on Redis: "Back up now" makes a point appear."""

import os
import subprocess
import sys
import time

import pytest
from django.urls import reverse

from appliances.models import Job
from portal.celery import app as celery_app
from portal.models import Role
from restores.models import RecoveryPoint
from tests.factories import UserFactory
from tests.support.database import child_database_url
from tests.support.signin import force_login_verified

BROKER = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")


def _use_broker(**conf):
    """Point this process's Celery app at another broker (its pools were made for the old one)."""
    celery_app.conf.update(**conf)
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def celery_worker(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    _use_broker(task_always_eager=False, broker_url=BROKER)
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")
    env = {**os.environ, "DATABASE_URL": child_database_url(), "CELERY_BROKER_URL": BROKER}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--pool=threads",
            "-c",
            "4",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
    _use_broker(task_always_eager=True, broker_url="memory://")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_back_up_now_through_celery_on_redis_makes_a_point_appear(
    protected_server, client, celery_worker
):
    force_login_verified(client, UserFactory(role=Role.TECHNICIAN))
    response = client.post(reverse("server_backup_now", args=[protected_server.pk]))
    assert response.status_code == 302
    deadline = time.monotonic() + 120
    while (
        time.monotonic() < deadline
        and not RecoveryPoint.objects.filter(server=protected_server).exists()
    ):
        assert celery_worker.poll() is None, celery_worker.stdout.read()
        time.sleep(0.5)
    job = Job.objects.get()
    assert RecoveryPoint.objects.filter(server=protected_server).count() == 1, (
        job.state,
        job.error,
    )
    assert job.state == "succeeded" and job.bytes_done == job.bytes_total == 16 << 20
    page = client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert "Succeeded" in page and "100%" in page
