"""The test database, for processes a test starts (a Celery worker, a console proxy)."""

from __future__ import annotations

from django.db import connection


def child_database_url() -> str:
    """DATABASE_URL naming the test database this test runs against."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
