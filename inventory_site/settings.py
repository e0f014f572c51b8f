"""Relevo server settings.

Everything that differs between a laptop and production comes from the
environment (a local ``.env`` is read for development; real variables win).
Defaults are the safe ones: debug off, no wildcard hosts, a secret key that
must be given. ``reports.checks`` validates the values that Django does not.

Each setting is declared once, complete, with what depends on the
environment written as an expression inside it: nothing below patches a
setting declared above, so what a reader sees is what Django gets.
"""

from __future__ import annotations

import os
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from inventory_site import envfile
from reports.private import PrivateSqliteConnection

BASE_DIR = Path(__file__).resolve().parent.parent
envfile.load(Path(os.environ.get("RELEVO_ENV_FILE") or BASE_DIR / ".env"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from exc


def secret_key(*, debug: bool) -> str:
    """DJANGO_SECRET_KEY; without it, a throwaway key when debugging, else ImproperlyConfigured."""
    key = os.environ.get("DJANGO_SECRET_KEY", "")
    if key:
        return key
    if not debug:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Run `make run` once (it writes a local .env), "
            "or export DJANGO_SECRET_KEY, or set DJANGO_DEBUG=true for a throwaway key."
        )
    return "insecure-debug-only-" + os.urandom(16).hex()


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = secret_key(debug=DEBUG)

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# --- Relevo -----------------------------------------------------------------
INVENTORY_DATA_DIR = Path(os.environ.get("INVENTORY_DATA_DIR") or BASE_DIR / "data").resolve()
INVENTORY_TRUSTED_PROXIES = env_list("INVENTORY_TRUSTED_PROXIES")
INVENTORY_MAX_UPLOAD_BYTES = env_int("INVENTORY_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
# One address's day file stops growing here (uploads past it get 413 day_file_full):
# 100 snapshots of the largest accepted size, thousands of usual ones (100-300 KB).
INVENTORY_DAY_FILE_MAX_BYTES = env_int("INVENTORY_DAY_FILE_MAX_BYTES", 100 * INVENTORY_MAX_UPLOAD_BYTES)
# A host is "online" while its newest snapshot is younger than OFFLINE_AFTER,
# "offline" after that, and "stale" (probably gone) after STALE_AFTER.
# Durations: a number with s, m, h or d (e.g. 30m, 7d).
INVENTORY_OFFLINE_AFTER = os.environ.get("INVENTORY_OFFLINE_AFTER", "30m")
INVENTORY_STALE_AFTER = os.environ.get("INVENTORY_STALE_AFTER", "7d")
# /readyz fails (so a load balancer stops sending uploads here) while the data folder's
# file system has less free space than this; uploads are still taken until it is full.
INVENTORY_MIN_FREE_BYTES = env_int("INVENTORY_MIN_FREE_BYTES", 100 * 1024 * 1024)
# fsync is what makes a 201 mean "on disk"; turning it off is for throwaway benchmarks only.
INVENTORY_FSYNC = env_bool("INVENTORY_FSYNC", True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "reports.apps.ReportsConfig",
    # The read API's OpenAPI document and its Swagger UI, served without a CDN (issue 5).
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Sign-in lockout (issue 13, see AXES_* below).
    "axes",
]

MIDDLEWARE = [
    # First, so that its one JSON line per request (INVENTORY_REQUEST_LOG) times and sees every answer.
    "reports.middleware.RequestLogMiddleware",
    # Sends INVENTORY_CONTENT_SECURITY_POLICY and the other headers Django 5.2 does not (issue 5).
    "reports.middleware.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A full disk or an unreachable database answers 507/503 with Retry-After, not 500 (reports.outage).
    "reports.middleware.OutageMiddleware",
    # Last, so that it sees the locked-out flag that the axes backend sets during the view.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "inventory_site.urls"
WSGI_APPLICATION = "inventory_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite (the embedded default) lives in the data folder. WAL lets readers run
# beside the one writer; IMMEDIATE transactions take the write lock up front so
# concurrent workers queue on the busy timeout instead of failing with
# "database is locked" when a read transaction tries to upgrade.
_SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;",
    # Creates a missing database file 0600 before SQLite opens it (its -wal/-shm follow): reports.private.
    "factory": PrivateSqliteConnection,
}


def default_database() -> dict:
    """DATABASE_URL (PostgreSQL in production), or SQLite in the data folder."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        # No health check (a SELECT 1 before each request's first query): a
        # connection the server dropped while idle fails that first query
        # instead, the token lookup, before anything is written; the request
        # is answered 503 database_unavailable (reports.outage, the agent
        # keeps its snapshot) and Django closes the broken connection when
        # the request ends, so the next one connects afresh.
        database = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=False)
    else:
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": INVENTORY_DATA_DIR / "relevo.sqlite3"}
    if database["ENGINE"] == "django.db.backends.postgresql":
        # An unreachable server must fail a request within the agent's timeouts (a 503), not hang it;
        # a connect_timeout in the URL's query string wins.
        # prepare_threshold: psycopg prepares nothing while it is None (Django's
        # default). Django's own cursors bind in the client and are never
        # prepared; reports.rowsql's upload statements ask to be (prepare=True).
        database["OPTIONS"] = {"connect_timeout": 5, "prepare_threshold": 5, **database.get("OPTIONS", {})}
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database["OPTIONS"] = {**_SQLITE_OPTIONS, **database.get("OPTIONS", {})}
        database["CONN_MAX_AGE"] = 0 if database.get("NAME") == ":memory:" else 60
    elif os.environ.get("RELEVO_TEST_DB_NAME"):
        # Test runs on one shared PostgreSQL must not collide: `make test-postgres` names
        # the test database per run (pytest-django creates and drops it).
        database["TEST"] = {"NAME": os.environ["RELEVO_TEST_DB_NAME"]}
    return database


DATABASES = {"default": default_database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve from the app folders too, so a server started by hand works before collectstatic
# (and do not warn that the collected folder is missing in that case).
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at: ")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"

# Django's own limit must not cut a request before Relevo's clearer 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = INVENTORY_MAX_UPLOAD_BYTES + 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "reports.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["reports.auth.IsReader"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "reports.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Readers are limited per user (INVENTORY_THROTTLE_READ); uploads and /enroll name their own throttles.
    "DEFAULT_THROTTLE_CLASSES": ["reports.throttling.ReadThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Relevo API",
    "DESCRIPTION": "Server inventory: agents upload snapshots, people read them. See docs/payload.md and docs/security.md.",
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two "kind" fields with different choices (an alert's condition, a destination's channel) get named enums.
    "ENUM_NAME_OVERRIDES": {
        "AlertKindEnum": "reports.models.ALERT_KINDS",
        "DestinationKindEnum": "reports.models.AlertDestination.KINDS",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "reports.api.schema.add_payload_schema",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json_line": {"format": "%(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        # reports.middleware.RequestLogMiddleware writes ready-made JSON lines.
        "request_lines": {"class": "logging.StreamHandler", "formatter": "json_line"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "relevo.request": {"handlers": ["request_lines"], "level": "INFO", "propagate": False},
        # Failures and lockouts are warnings (user name and address masked); its per-request chatter is not logged.
        "axes": {"level": "WARNING"},
    },
}

# --- Scale-out and operations -------------------------------------------------
# Retention for `manage.py prune` without --older-than (0 keeps everything).
# 90 days of compacted history is a few hundred MB per host (README, "Retention").
INVENTORY_RETENTION_DAYS = env_int("INVENTORY_RETENTION_DAYS", 90)
# `manage.py compact` compresses the day files of days at least this many days
# back: time for most of an agent's spool (500 snapshots, about 42 hours at 5
# minutes) to drain first. Later ones are kept all the same (reports.store), and
# each day waiting costs ~40 MB of plain JSON per host at 400 processes.
INVENTORY_COMPACT_AFTER_DAYS = env_int("INVENTORY_COMPACT_AFTER_DAYS", 2)
# GET /metrics answers these client networks, or anyone with the bearer token.
INVENTORY_METRICS_ALLOWED = env_list("INVENTORY_METRICS_ALLOWED", "127.0.0.1/32,::1/128")
INVENTORY_METRICS_TOKEN = os.environ.get("INVENTORY_METRICS_TOKEN", "")
# One JSON line per request on stderr (reports.middleware); off only for noisy benchmarks.
INVENTORY_REQUEST_LOG = env_bool("INVENTORY_REQUEST_LOG", True)
# --- Security, read API, throttling (issue 5) ---------------------------------
# Production runs behind a TLS-terminating proxy: set DJANGO_SECURE=true there
# (HTTPS redirect, HSTS, secure cookies), and DJANGO_SECURE_PROXY_SSL_HEADER=true
# ONLY if that proxy always sets X-Forwarded-Proto and clients cannot reach
# gunicorn directly (otherwise any client could claim to be on HTTPS).
# `manage.py check --deploy` is clean with those; see docs/security.md.
DJANGO_SECURE = env_bool("DJANGO_SECURE", False)
SECURE_SSL_REDIRECT = DJANGO_SECURE
SESSION_COOKIE_SECURE = DJANGO_SECURE
CSRF_COOKIE_SECURE = DJANGO_SECURE
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000 if DJANGO_SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", DJANGO_SECURE)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", DJANGO_SECURE)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER") else None
# Health probes come from the proxy/orchestrator over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_HTTPONLY = True
# Old keys still accepted for signatures (sessions) while rotating DJANGO_SECRET_KEY.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS")
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Sent on every response by reports.middleware.SecurityHeadersMiddleware (Django 5.2 has no CSP).
INVENTORY_CONTENT_SECURITY_POLICY = os.environ.get(
    "INVENTORY_CONTENT_SECURITY_POLICY",
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)

# Per-host enrollment: POST /enroll with one of these secrets returns a token
# bound to the host id. Several may be listed (comma-separated) while rotating.
INVENTORY_ENROLL_SECRETS = env_list("INVENTORY_ENROLL_SECRET")

# The agent packages the "Add hosts" page offers (`make packages` writes them to dist/).
INVENTORY_PACKAGES_DIR = Path(os.environ.get("INVENTORY_PACKAGES_DIR") or BASE_DIR / "dist").resolve()

# Limits: "<count>/<period>" (s, min, h, day; "10/5s" works) or "off".
# Counted in Redis when REDIS_URL is set; otherwise beside an SQLite database in its own file
# (relevo-throttle.sqlite3), or in PostgreSQL's ThrottleCounter table (reports.throttling).
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
INVENTORY_THROTTLE_UPLOAD = os.environ.get("INVENTORY_THROTTLE_UPLOAD", "120/min")  # per token + address
INVENTORY_THROTTLE_READ = os.environ.get("INVENTORY_THROTTLE_READ", "600/min")  # per user
INVENTORY_THROTTLE_ENROLL = os.environ.get("INVENTORY_THROTTLE_ENROLL", "20/min")  # per address
INVENTORY_THROTTLE_AUTH_FAILURES = os.environ.get("INVENTORY_THROTTLE_AUTH_FAILURES", "30/min")  # per address

# --- Sign-in lockout (issue 13): django-axes on /accounts/login/ and /admin/login/ ----
# INVENTORY_LOGIN_FAILURE_LIMIT failed sign-ins from one client address, each
# within INVENTORY_LOGIN_COOLOFF_MINUTES of the one before, lock that address
# out (429, reports.lockout) until that long after the last one; 0 turns it off.
# Counted per address only, never per user name alone, so that nobody can lock
# the real admin out from somewhere else (trade-offs: docs/security.md).
INVENTORY_LOGIN_FAILURE_LIMIT = env_int("INVENTORY_LOGIN_FAILURE_LIMIT", 10)
INVENTORY_LOGIN_COOLOFF_MINUTES = env_int("INVENTORY_LOGIN_COOLOFF_MINUTES", 15)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out address before any password hashing
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = INVENTORY_LOGIN_FAILURE_LIMIT > 0
AXES_FAILURE_LIMIT = max(INVENTORY_LOGIN_FAILURE_LIMIT, 1)
AXES_COOLOFF_TIME = timedelta(minutes=max(INVENTORY_LOGIN_COOLOFF_MINUTES, 1))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_CLIENT_IP_CALLABLE = "reports.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "reports.lockout.lockout_response"
AXES_HANDLER = "reports.lockout.LockoutHandler"  # the database handler, without writes for refused sign-ins
# A refused attempt is not recorded: it costs two reads, no write, no hash, and an
# attacker cannot grow the attempt row; the lock still ends COOLOFF after the last real failure.
# (Needs AXES_HANDLER above for "no write".)
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Masked in the attempt rows' form data and in the log (the password always is).
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]
# AXES_RESET_ON_SUCCESS stays off: with a count per address, anyone with an account of
# their own could sign in between guesses at another one and start again from zero.

# Alerts (docs/alerts.md). E-mail goes through Django's mail settings, from the environment.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("EMAIL_USE_TLS", "false").lower() in ("1", "true", "yes")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "relevo@localhost")
ALERTS_BASE_URL = os.environ.get("ALERTS_BASE_URL", "http://localhost:8000").rstrip("/")  # for links in alerts
ALERTS_RULES_CACHE_SECONDS = env_int("ALERTS_RULES_CACHE_SECONDS", 5)
ALERTS_GIVE_UP_AFTER = os.environ.get("ALERTS_GIVE_UP_AFTER", "24h")  # then a delivery is marked failed
# How long a worker holds the rows it is sending; must exceed a send (webhook: 15 s at most, e-mail: EMAIL_TIMEOUT).
ALERTS_LEASE_SECONDS = env_int("ALERTS_LEASE_SECONDS", 60)
