"""Portal settings: one module, read from the environment (django-environ).

With no variable set the portal runs for development and demo: SQLite, Celery tasks run
eagerly in-process, e-mail to the console. ``BDR_ENV=production`` turns on the hardened
mode, which refuses to start without its secrets.
"""

from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

BDR_ENV = env.str("BDR_ENV", default="development")
if BDR_ENV not in {"development", "production"}:
    raise ImproperlyConfigured("BDR_ENV must be 'development' or 'production'")
PRODUCTION = BDR_ENV == "production"

_DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production-0123456789"  # noqa: S105
# A Fernet key used only in development; production must set SECRETS_KEYS.
_DEV_SECRETS_KEY = "ZGV2LW9ubHktc2VjcmV0cy1rZXktMzItYnl0ZXMhISE="


def _required(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when BDR_ENV=production")
    return value


if PRODUCTION:
    SECRET_KEY = _required("SECRET_KEY")
    # Comma-separated Fernet keys, newest first: the first encrypts, all decrypt (rotation).
    SECRETS_KEYS = _required("SECRETS_KEYS").split(",")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when BDR_ENV=production")
    DEBUG = False
else:
    SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY)
    SECRETS_KEYS = env.list("SECRETS_KEYS", default=[_DEV_SECRETS_KEY])
    ALLOWED_HOSTS = env.list(
        "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"]
    )
    DEBUG = env.bool("DEBUG", default=True)
# Older SECRET_KEYs still accepted while one is rotated (sessions, links, console tokens).
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

INSTALLED_APPS = [
    # First: its ``runserver`` (refusing a public address with the development keys) must
    # win over staticfiles' (Django takes a command from the earliest app that has it).
    "portal",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "csp",
    "appliances",
    "restores",
    "billing",
    "offsite",
    "monitoring",
    "statusapi",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.content_policy.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "portal.middleware.MFARequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: it turns a lockout flagged during authentication into its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = True
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
# A kept connection that PostgreSQL dropped (a restart) is replaced before a request uses it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "portal.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Axes first: it refuses a locked-out username+address before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="")
# Backends that deliver nothing: production would "send" password-reset links to its log.
_UNDELIVERED_MAIL = {"", "console", "locmem", "dummy"}
if PRODUCTION and EMAIL_BACKEND.rpartition(".")[0].rpartition(".")[2] in _UNDELIVERED_MAIL:
    raise ImproperlyConfigured(
        "EMAIL_BACKEND must be a backend that delivers mail when BDR_ENV=production"
        " (e.g. django.core.mail.backends.smtp.EmailBackend), not console, locmem or unset"
    )
EMAIL_BACKEND = EMAIL_BACKEND or "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="portal@bdr.example")

# Celery: no broker configured means tasks run eagerly, in-process (development and demo).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE: dict = {}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "portal.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "BDR portal API",
    "VERSION": "1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "ENUM_NAME_OVERRIDES": {"ProtectionStateEnum": "monitoring.models.ProtectionState"},
    # Integrations read the schema with their Status API key.
    "SERVE_AUTHENTICATION": [
        "statusapi.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # paramiko logs every connection at INFO; keep only its warnings.
    "loggers": {"paramiko": {"level": "WARNING"}},
}

# Sign-in throttling (django-axes): AXES_FAILURE_LIMIT wrong passwords for one username from
# one address lock that pair out for AXES_COOLOFF_TIME hours (MSP admins can lift it earlier).
# The handler is axes's database handler that also audits failures and lockouts.
AXES_HANDLER = "portal.signin.AuditingAxesHandler"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_TIME", default=1.0)  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "portal.audit.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Password-reset requests: at most this many per address and per e-mail in the window.
BDR_RESET_LIMIT_PER_IP = env.int("BDR_RESET_LIMIT_PER_IP", default=10)
BDR_RESET_LIMIT_PER_EMAIL = env.int("BDR_RESET_LIMIT_PER_EMAIL", default=3)
BDR_RESET_WINDOW_SECONDS = env.int("BDR_RESET_WINDOW_SECONDS", default=3600)
# The issuer shown in authenticator apps.
OTP_TOTP_ISSUER = "BDR portal"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Appliance sessions a web request may hold at once (restores/session_limits.py): streaming
# downloads, and browse/search pages, per user and per customer, counted across processes.
BDR_DOWNLOADS_PER_USER = env.int("BDR_DOWNLOADS_PER_USER", default=2)
BDR_DOWNLOADS_PER_CUSTOMER = env.int("BDR_DOWNLOADS_PER_CUSTOMER", default=4)
BDR_BROWSES_PER_USER = env.int("BDR_BROWSES_PER_USER", default=3)
BDR_BROWSES_PER_CUSTOMER = env.int("BDR_BROWSES_PER_CUSTOMER", default=6)
# A slot whose process stopped renewing it (killed) stops counting after this many seconds.
BDR_SESSION_SLOT_SECONDS = env.int("BDR_SESSION_SLOT_SECONDS", default=60)

# Appliances: how the portal reaches bdr-agent.
BDR_RPC_TIMEOUT = env.float("BDR_RPC_TIMEOUT", default=120.0)
# The most the portal reads of one message from an appliance (a JSON line: a folder listing
# of ~80,000 names fits) and of one binary answer (the agent sends windows of at most 8 MiB):
# a hostile appliance's endless line or 10 GiB length prefix ends the session, not the memory.
BDR_RPC_MAX_LINE = env.int("BDR_RPC_MAX_LINE", default=16 << 20)
BDR_RPC_MAX_PAYLOAD = env.int("BDR_RPC_MAX_PAYLOAD", default=16 << 20)
# Seconds to wait before each retry of a connection that failed (backoff).
BDR_RPC_RETRY_DELAYS = [float(x) for x in env.list("BDR_RPC_RETRY_DELAYS", default=["1", "2", "4"])]
# The forced command written into the appliance's authorized_keys line.
BDR_AGENT_COMMAND = env.str("BDR_AGENT_COMMAND", default="bdr-agent --store /srv/bdr rpc")
BDR_ALLOW_LOCAL_TRANSPORT = env.bool("BDR_ALLOW_LOCAL_TRANSPORT", default=not PRODUCTION)
# The VM console: where the page's noVNC connects (manage.py console_proxy; a path such as
# "/console/" means this host, ws or wss as the page), and how long its one-time token lives.
BDR_CONSOLE_PROXY_URL = env.str("BDR_CONSOLE_PROXY_URL", default="ws://127.0.0.1:6080/")
BDR_CONSOLE_TOKEN_SECONDS = env.int("BDR_CONSOLE_TOKEN_SECONDS", default=60)
# The VM console's limits (issue 14, item 7): the proxy closes a console at this age, and
# checks every BDR_CONSOLE_CHECK_SECONDS that its user is still active, signed in and
# allowed to see the VM, cutting it otherwise.
BDR_CONSOLE_MAX_SECONDS = env.float("BDR_CONSOLE_MAX_SECONDS", default=8 * 3600.0)
BDR_CONSOLE_CHECK_SECONDS = env.float("BDR_CONSOLE_CHECK_SECONDS", default=5.0)

CELERY_BEAT_SCHEDULE["poll-appliances"] = {
    "task": "appliances.tasks.poll_all_appliances",
    "schedule": env.float("BDR_POLL_SECONDS", default=300.0),
}

# Off-site: an alert when an appliance's oldest point not yet on its vault is older than this;
# scheduled replications are queued every BDR_REPLICATE_SECONDS for appliances with points
# waiting, and an appliance whose last replication failed is left alone for
# BDR_REPLICATE_RETRY_MINUTES.
BDR_OFFSITE_LAG_ALERT_HOURS = env.float("BDR_OFFSITE_LAG_ALERT_HOURS", default=24.0)
BDR_REPLICATE_RETRY_MINUTES = env.float("BDR_REPLICATE_RETRY_MINUTES", default=60.0)
CELERY_BEAT_SCHEDULE["offsite-replicate"] = {
    "task": "offsite.tasks.replicate_due",
    "schedule": env.float("BDR_REPLICATE_SECONDS", default=900.0),
}

# Billing. Stripe is optional: with no STRIPE_API_KEY invoices are still made and are marked
# paid by hand. STRIPE_API_BASE is Stripe's API address (tests point it at a local server).
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", default=300)  # seconds
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
if PRODUCTION and STRIPE_API_KEY and not STRIPE_WEBHOOK_SECRET:
    raise ImproperlyConfigured("STRIPE_WEBHOOK_SECRET must be set when STRIPE_API_KEY is")

from celery.schedules import crontab  # noqa: E402

CELERY_BEAT_SCHEDULE["billing-sample-usage"] = {
    "task": "billing.tasks.sample_usage",
    "schedule": crontab(hour=23, minute=30),
}
CELERY_BEAT_SCHEDULE["billing-monthly-invoices"] = {
    "task": "billing.tasks.run_monthly_invoices",
    "schedule": crontab(day_of_month=1, hour=3, minute=0),
}


# Content-Security-Policy (django-csp): scripts and styles from this origin only (the page's
# one inline module script carries the request's nonce), no plugins, no framing, and
# websockets only to the VM console proxy (portal/content_policy.py adds its origin).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Fleet monitoring (monitoring/; README "Monitoring"). A server's RPO is its schedule's
# interval x 2, counted in scheduled time, plus BDR_RPO_GRACE_MINUTES of wall time.
BDR_RPO_GRACE_MINUTES = env.float("BDR_RPO_GRACE_MINUTES", default=30.0)
# The newest off-site point may be this old before the server shows a warning.
BDR_OFFSITE_RPO_HOURS = env.float("BDR_OFFSITE_RPO_HOURS", default=BDR_OFFSITE_LAG_ALERT_HOURS)
# A warning when no point was verified within this many hours (0: verifying is not required).
BDR_VERIFY_MAX_AGE_HOURS = env.float("BDR_VERIFY_MAX_AGE_HOURS", default=0.0)
# Hysteresis: a bad condition raises its alert once it has held BDR_ALERT_RAISE_MINUTES, or
# at once when it turned bad BDR_ALERT_FLAPS times within BDR_ALERT_FLAP_MINUTES (flapping);
# the alert resolves once the good condition has held BDR_ALERT_CLEAR_MINUTES.
BDR_ALERT_RAISE_MINUTES = env.float("BDR_ALERT_RAISE_MINUTES", default=5.0)
BDR_ALERT_CLEAR_MINUTES = env.float("BDR_ALERT_CLEAR_MINUTES", default=15.0)
BDR_ALERT_FLAPS = env.int("BDR_ALERT_FLAPS", default=3)
BDR_ALERT_FLAP_MINUTES = env.float("BDR_ALERT_FLAP_MINUTES", default=15.0)
# An open, unacknowledged engine alert reminds every BDR_ALERT_REMIND_HOURS on each channel
# it went to; a critical one goes to the escalation channel after BDR_ALERT_ESCALATE_MINUTES.
BDR_ALERT_REMIND_HOURS = env.float("BDR_ALERT_REMIND_HOURS", default=4.0)
BDR_ALERT_ESCALATE_MINUTES = env.float("BDR_ALERT_ESCALATE_MINUTES", default=30.0)
# How often the fleet page's live part refreshes in the browser (htmx).
BDR_FLEET_REFRESH_SECONDS = env.int("BDR_FLEET_REFRESH_SECONDS", default=15)
# Status API keys: how often a key's "last used" time is written (at most once per this).
BDR_API_KEY_TOUCH_SECONDS = env.int("BDR_API_KEY_TOUCH_SECONDS", default=60)
# The retention simulator: fewer days of backups than this in the last 30, and it assumes
# this share (percent) of a server's size changes a day instead of measuring it.
BDR_SIMULATOR_MIN_DAYS = env.int("BDR_SIMULATOR_MIN_DAYS", default=3)
BDR_SIMULATOR_FALLBACK_CHANGE_PERCENT = env.float(
    "BDR_SIMULATOR_FALLBACK_CHANGE_PERCENT", default=1.0
)
CELERY_BEAT_SCHEDULE["monitoring-evaluate"] = {
    "task": "monitoring.tasks.evaluate_fleet",
    "schedule": env.float("BDR_MONITOR_SECONDS", default=60.0),
}
CELERY_BEAT_SCHEDULE["monitoring-retention"] = {
    "task": "monitoring.tasks.check_retention",
    "schedule": crontab(hour=0, minute=20),
}

# Notifications (monitoring/delivery.py; README "Notifications"): notices are handed to
# e-mail recipients and webhook endpoints every BDR_NOTIFY_SECONDS, BDR_NOTIFY_BATCH at a
# time, batch after batch for at most BDR_NOTIFY_SECONDS. A failed delivery is retried after
# BDR_NOTIFY_RETRY_BASE_SECONDS x 2^(n-1) (capped at BDR_NOTIFY_RETRY_MAX_SECONDS, ±20 %
# jitter), BDR_NOTIFY_MAX_ATTEMPTS times in all.
BDR_NOTIFY_BATCH = env.int("BDR_NOTIFY_BATCH", default=200)
BDR_NOTIFY_RETRY_BASE_SECONDS = env.float("BDR_NOTIFY_RETRY_BASE_SECONDS", default=30.0)
BDR_NOTIFY_RETRY_MAX_SECONDS = env.float("BDR_NOTIFY_RETRY_MAX_SECONDS", default=3600.0)
BDR_NOTIFY_MAX_ATTEMPTS = env.int("BDR_NOTIFY_MAX_ATTEMPTS", default=8)
# A webhook call gives up after BDR_WEBHOOK_TIMEOUT seconds; BDR_WEBHOOK_WORKERS calls run at
# once; at most BDR_WEBHOOK_MAX_RESPONSE bytes of an answer are read (1,000 are kept).
BDR_WEBHOOK_TIMEOUT = env.float("BDR_WEBHOOK_TIMEOUT", default=5.0)
BDR_WEBHOOK_WORKERS = env.int("BDR_WEBHOOK_WORKERS", default=8)
BDR_WEBHOOK_MAX_RESPONSE = env.int("BDR_WEBHOOK_MAX_RESPONSE", default=64 << 10)
# After a rotation the previous secret still signs (a second signature) for this long.
BDR_WEBHOOK_OVERLAP_HOURS = env.float("BDR_WEBHOOK_OVERLAP_HOURS", default=24.0)
# Endpoints on loopback or private addresses (SSRF into the portal's network): refused in
# production unless this says otherwise; allowed in development and tests.
BDR_WEBHOOK_ALLOW_PRIVATE = env.bool("BDR_WEBHOOK_ALLOW_PRIVATE", default=not PRODUCTION)
BDR_NOTIFY_SECONDS = env.float("BDR_NOTIFY_SECONDS", default=15.0)
CELERY_BEAT_SCHEDULE["monitoring-deliver"] = {
    "task": "monitoring.tasks.deliver_notices",
    "schedule": BDR_NOTIFY_SECONDS,
}
