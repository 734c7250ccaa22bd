"""Running the portal's own commands (manage.py, gunicorn) in a process of their own, with
the environment a test chooses: how an operator meets the settings' refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
# Variables a test states itself; the run's own values of them are left out.
_CHOSEN = {"SECRET_KEY", "SECRETS_KEYS", "ALLOWED_HOSTS", "EMAIL_BACKEND", "BDR_ENV",
           "DJANGO_ALLOW_ASYNC_UNSAFE"}  # fmt: skip
OWN_SECRET_KEY = "k" * 10 + "Zq8!xY2#vL5@pR7$nM1%tB4^wE6&uI9*oA3(sD0)fG"


def environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CHOSEN}
    env.update(overrides)
    return env


def production(**overrides: str) -> dict[str, str]:
    """Everything production mode requires, with ``overrides`` on top."""
    return {
        "BDR_ENV": "production",
        "SECRET_KEY": OWN_SECRET_KEY,
        "SECRETS_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "portal.example.com",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        **overrides,
    }


def manage(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
