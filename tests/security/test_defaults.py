"""Issue 14, item 8: safe defaults, tried the way an operator would meet them.

- Development mode with the public development keys listens on loopback only (runserver and
  gunicorn through portal/gunicorn_conf.py); with its own keys it may listen anywhere.
- ``manage.py demo`` (it prints passwords and an authenticator secret) refuses production.
- Production refuses a mail backend that delivers nothing (password-reset links would go to
  the log): console, locmem, dummy or none set.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from cryptography.fernet import Fernet

from tests.support.manage import OWN_SECRET_KEY, ROOT, environment, manage, production
from tests.support.sshd import free_port

OWN_KEYS = {"SECRET_KEY": OWN_SECRET_KEY, "SECRETS_KEYS": Fernet.generate_key().decode()}


def _answers(url: str, process: subprocess.Popen, within: float = 30) -> int:
    """The status of GET ``url`` once the server started by ``process`` is up."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {within} s")


def _serving(args: list[str], url: str, tmp_path, **env: str) -> int:
    """Start a server, GET ``url`` from it, stop it. An empty SQLite file is its database
    (runserver looks for unapplied migrations, a page opens a transaction)."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **env}
    with open(tmp_path / "server.log", "w") as log:
        process = subprocess.Popen(args, cwd=ROOT, env=environment(**env), stdout=log,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        try:
            return _answers(url, process)
        finally:
            process.terminate()
            process.wait(timeout=30)


def _gunicorn(*args: str) -> list[str]:
    gunicorn = str(ROOT / ".venv" / "bin" / "gunicorn")
    return [gunicorn, "-c", "python:portal.gunicorn_conf", "-w", "1", *args, "portal.wsgi"]


@pytest.mark.parametrize("address", ["0.0.0.0", "[::]", "192.0.2.10", "portal.example.com"])  # noqa: S104
def test_runserver_refuses_a_public_address_with_the_development_keys(address):
    result = manage("runserver", f"{address}:{free_port()}", "--noreload", timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"CommandError: refusing to listen on {address.strip('[]')}")
    assert "development SECRET_KEY" in lines[0]


def test_runserver_listens_on_loopback_and_anywhere_with_its_own_keys(tmp_path):
    port = free_port()
    args = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    assert _serving(args, f"http://127.0.0.1:{port}/accounts/login/", tmp_path) == 200
    port = free_port()
    args = [sys.executable, "manage.py", "runserver", f"0.0.0.0:{port}", "--noreload"]
    assert _serving(args, f"http://127.0.0.1:{port}/accounts/login/", tmp_path, **OWN_KEYS) == 200


def test_gunicorn_refuses_a_public_address_with_the_development_keys(tmp_path):
    result = subprocess.run(_gunicorn("-b", f"0.0.0.0:{free_port()}"), cwd=ROOT,
                            env=environment(), capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: refusing to listen on 0.0.0.0: this portal uses the public development "
        "SECRET_KEY/SECRETS_KEYS; listen on 127.0.0.1, or set BDR_ENV=production with your "
        "own keys"
    ]
    port = free_port()
    args = _gunicorn("-b", f"0.0.0.0:{port}")
    assert _serving(args, f"http://127.0.0.1:{port}/accounts/login/", tmp_path, **OWN_KEYS) == 200


def test_demo_refuses_production():
    result = manage("demo", "--store-dir", "/nonexistent/demo-store", **production())
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: the demo prints passwords and an authenticator secret: not here"
    )


@pytest.mark.parametrize(
    "backend",
    [
        None,
        "",
        "django.core.mail.backends.console.EmailBackend",
        "django.core.mail.backends.locmem.EmailBackend",
        "django.core.mail.backends.dummy.EmailBackend",
    ],
)
def test_production_refuses_a_mail_backend_that_delivers_nothing(backend):
    env = production()
    if backend is None:
        del env["EMAIL_BACKEND"]
    else:
        env["EMAIL_BACKEND"] = backend
    result = _import_settings(env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: EMAIL_BACKEND must be a backend that "
        "delivers mail when BDR_ENV=production (e.g. django.core.mail.backends.smtp."
        "EmailBackend), not console, locmem or unset"
    )


def test_production_takes_smtp_and_development_keeps_the_console():
    smtp = _import_settings(production(), "print(settings.EMAIL_BACKEND)")
    assert smtp.stdout.strip() == "django.core.mail.backends.smtp.EmailBackend", smtp.stderr
    dev = _import_settings({}, "print(settings.EMAIL_BACKEND)")
    assert dev.stdout.strip() == "django.core.mail.backends.console.EmailBackend", dev.stderr


def _import_settings(env: dict, then: str = "") -> subprocess.CompletedProcess:
    code = f"import portal.settings as settings\n{then}"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment(**env),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
