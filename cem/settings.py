"""One settings file for every environment, configured from the environment (12-factor).

CEM_ENV selects the mode: "dev" (default), "test" or "production". Everything that differs
between deployments is an environment variable with a typed default below.
"""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from kombu import Queue

from alignment.beat import BEAT_SCHEDULE as _alignment_beat
from audits.beat import BEAT_SCHEDULE as _audits_beat
from cem.queues import DEFAULT as DEFAULT_QUEUE
from cem.queues import QUEUES
from feedback.beat import BEAT_SCHEDULE as _feedback_beat
from incentives.beat import BEAT_SCHEDULE as _incentives_beat
from learning.beat import BEAT_SCHEDULE as _learning_beat

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

CEM_ENV = env.str("CEM_ENV", default="dev")
if CEM_ENV not in {"dev", "test", "production"}:
    raise ValueError(f"CEM_ENV must be dev, test or production, not {CEM_ENV!r}")
PRODUCTION = CEM_ENV == "production"
TESTING = CEM_ENV == "test"

DEBUG = env.bool("DEBUG", default=CEM_ENV == "dev")
SECRET_KEY = env.str("SECRET_KEY", default="" if PRODUCTION else "dev-only-insecure-key-" + "x" * 40)
if not SECRET_KEY:
    raise ValueError("SECRET_KEY must be set when CEM_ENV=production")
# The key of the suppression list's hashes (cem.suppression: the erased and opted-out people's
# email, phone and external id, kept only as HMACs). Unset, it is SECRET_KEY — and then rotating
# SECRET_KEY orphans the list: every stored hash stops matching, so an erased or opted-out
# person imported again is stored and contacted as new. The list cannot be re-hashed (it holds
# no identifiers). So in production set it once — to the current SECRET_KEY when the list
# already has rows — and keep it when SECRET_KEY rotates; rotating it empties the list in effect.
PRIVACY_HASH_KEY = env.str("PRIVACY_HASH_KEY", default="") or SECRET_KEY
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["*"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    # cem comes first so its management commands (migrate, flush) wrap Django's.
    "cem.apps.CoreConfig",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "axes",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "feedback.apps.FeedbackConfig",
    "audits.apps.AuditsConfig",
    "learning.apps.LearningConfig",
    "incentives.apps.IncentivesConfig",
    "alignment.apps.AlignmentConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "cem.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
    # Resolves the tenant from the session or the API key and holds it for the whole request,
    # rendering included; everything below runs inside that tenant.
    "cem.middleware.TenantMiddleware",
    # Pages in the organization's time zone (the API stays in UTC).
    "cem.local_time.OrganizationTimeZoneMiddleware",
    # Admins of an organization that requires two-factor reach only the enrolment page until then.
    "cem.two_factor.AdminTwoFactorMiddleware",
    "cem.middleware.ApiRateLimitMiddleware",
    "cem.middleware.IdempotencyMiddleware",
]

ROOT_URLCONF = "cem.urls"
WSGI_APPLICATION = "cem.wsgi.application"

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
                "cem.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL names the schema owner (it runs migrations). Every other connection drops to
# DB_APP_ROLE with SET ROLE: that role owns nothing and lacks BYPASSRLS, so row-level security
# holds even if an ORM filter is forgotten. See cem/db/base.py.
DATABASES = {"default": env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/cem")}
DATABASES["default"]["ENGINE"] = "cem.db"
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["OPTIONS"] = {
    **DATABASES["default"].get("OPTIONS", {}),
    "assume_role": env.str("DB_APP_ROLE", default="cem_app"),
}
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_cem")}
# Dashboards and charts read from the "replica" alias (cem/db/replica.py: views that declare
# reads_from_replica, GETs only, never inside a transaction on the primary). DATABASE_REPLICA_URL
# names a streaming replica; unset, the alias points at the primary and routing is off unless
# READ_REPLICA=true (a second connection to the same server, as the tests and the scale-out demo do).
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
_replica = env.db_url_config(DATABASE_REPLICA_URL) if DATABASE_REPLICA_URL else dict(DATABASES["default"])
DATABASES["replica"] = {
    **_replica,
    "ENGINE": "cem.db",  # the same role drop and tenant GUC as the primary, so RLS holds there too
    "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
    "CONN_HEALTH_CHECKS": True,
    "OPTIONS": {**_replica.get("OPTIONS", {}), "assume_role": DATABASES["default"]["OPTIONS"]["assume_role"]},
    "TEST": {"MIRROR": "default"},
}
READ_REPLICA = env.bool("READ_REPLICA", default=bool(DATABASE_REPLICA_URL))
DATABASE_ROUTERS = ["cem.db.replica.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, cache, rate limits ------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="cem"),
    }
}
if TESTING:
    CACHES["default"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=TESTING)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Queues by priority (cem/queues.py): alerts, rollups, bulk, default. A worker started without -Q
# consumes all four (./run); production runs a pool per queue (docker-compose.yml).
# Each queue bound under its own key (left out, Celery binds all four under "default", so anything
# published to that exchange by key would be copied into every queue).
CELERY_TASK_QUEUES = tuple(Queue(name, routing_key=name) for name in QUEUES)
CELERY_TASK_DEFAULT_QUEUE = DEFAULT_QUEUE
CELERY_TASK_ROUTES = ("cem.queues.route",)
# The database scheduler, sending each due job once even when two beats run (cem/beat.py).
CELERY_BEAT_SCHEDULER = "cem.beat:ClaimingScheduler"
CELERY_BEAT_SCHEDULE = {
    "events-sweep": {"task": "cem.events_sweep", "schedule": timedelta(seconds=30)},
    "idempotency-purge": {"task": "cem.idempotency_purge", "schedule": timedelta(hours=1)},
    "webhooks-send-due": {"task": "cem.webhooks_send_due", "schedule": timedelta(seconds=30)},
    # Retention (cem/privacy.py): each organization's policy, nightly, before the rollup check.
    "privacy-retention": {"task": "cem.privacy_retention_dispatch", "schedule": crontab(minute=30, hour=1)},
}
CELERY_BEAT_SCHEDULE.update(_feedback_beat)
CELERY_BEAT_SCHEDULE.update(_audits_beat)
CELERY_BEAT_SCHEDULE.update(_learning_beat)
CELERY_BEAT_SCHEDULE.update(_incentives_beat)
CELERY_BEAT_SCHEDULE.update(_alignment_beat)

# --- Auth -----------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Hashing is deliberately slow; tests create dozens of users per test.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Axes keeps the client address of every attempt: give it a rotating-salt hash, never the address.
AXES_CLIENT_IP_CALLABLE = "cem.ip_hashing.pseudonymous_ip"
# How often the salt of the IP hashes changes (cem/ip_hashing.py).
IP_HASH_ROTATION_SECONDS = env.int("IP_HASH_ROTATION_SECONDS", default=24 * 3600)
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_LOCKOUT_CALLABLE = "cem.login.lockout_response"  # a page (429) saying how long to wait
# Two-factor is optional per user (cem/two_factor.py): the account page enrols an authenticator app.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="CEM")

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cem.api.authentication.ApiKeyAuthentication",
        "cem.api.authentication.TenantSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["cem.api.permissions.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "cem.api.pagination.DefaultPagination",
    # DRF's three, the JSON one refusing what PostgreSQL cannot store (cem/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "cem.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cem.api.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + ([] if PRODUCTION else ["rest_framework.renderers.BrowsableAPIRenderer"]),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CEM platform API",
    "DESCRIPTION": "Feedback, audits, learning, incentives and alignment on one loop. "
    "Authenticate with `Authorization: Bearer <api key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVERS": [{"url": SITE_URL}],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "cem.api.schema.document_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "MembershipRoleEnum": "cem.models.access.Role",
        "EmployeeRoleEnum": "cem.models.hierarchy.Employee.Role",
        "QuestionTypeEnum": "feedback.models.QuestionType",
        "ResponseSourceEnum": "feedback.models.ResponseSource",
        "CaseStatusEnum": "feedback.models.Case.Status",
        "ChannelKindEnum": "cem.models.standards.Channel.Kind",
        "ProgramKindEnum": "audits.models.ProgramKind",
        "FormItemTypeEnum": "audits.models.FormItem.Type",
        "ShopperStatusEnum": "audits.models.Shopper.Status",
        "AssignmentStatusEnum": "audits.models.Assignment.Status",
        "AuditStatusEnum": "audits.models.Audit.Status",
        "ContentStatusEnum": "learning.models.ContentStatus",
        "LearningAssignmentStatusEnum": "learning.models.Assignment.Status",
        "LearningAssignmentSourceEnum": "learning.models.Assignment.Source",
        "GapRuleSourceEnum": "learning.models.GapRule.Source",
        "DriverAnalysisOutcomeEnum": "alignment.models.DriverAnalysis.Outcome",
        "BusinessMetricKindEnum": "alignment.models.BusinessMetric.Kind",
        # Day/week/month/quarter: business-metric periods and reward-rule cap periods alike.
        "PeriodKindEnum": "alignment.models.PeriodKind",
    },
}
API_RATE_LIMIT_PER_MINUTE = env.int("API_RATE_LIMIT_PER_MINUTE", default=600)
# Repeated reads of an unchanged store-dashboard panel are replayed in front of Django from Redis
# (cem/fast_reads.py): on whenever the cache is Redis; FAST_READS=false sends every read to Django.
FAST_READS = env.bool("FAST_READS", default=True)
# How many proxies of ours (load balancer, TLS terminator) append to X-Forwarded-For: per-address
# limits (public pages, sign-in) read the address the outermost of them saw (cem/throttle.py).
# Leave 0 when clients reach gunicorn directly, or every address could be forged.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
IDEMPOTENCY_TTL = timedelta(hours=24)
BULK_INGEST_MAX_ROWS = 10_000
# Outgoing webhooks may reach private and loopback addresses (a local test receiver) only outside production.
WEBHOOKS_ALLOW_PRIVATE = env.bool("WEBHOOKS_ALLOW_PRIVATE", default=not PRODUCTION)
DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024

# --- I18n -----------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / ".local" / "media")
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="cem@localhost")

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the cookie-less meta tag; keep Django's default
# Nothing is framed, the feedback widget included: widget.js builds its pop-up in the host page's
# own DOM and talks to JSON endpoints, so DENY (and frame-ancestors 'none') holds everywhere.
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Content-Security-Policy (django-csp). Scripts come only from our static files; an inline script
# needs the request's nonce ({{ request.csp_nonce }}), and no handler attributes (onclick=) run.
# No 'unsafe-eval': htmx runs without eval (no hx-on / js: values) and plotly's SVG charts don't
# use it. Styles allow 'unsafe-inline' because plotly sets style attributes and injects <style>
# rules at run time, as htmx does for its indicator class; CSS cannot run script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        # data: for plotly's and Swagger UI's inline icons, blob: for plotly's PNG download, https:
        # for images in lesson bodies (learning/rendering.py lets web addresses through).
        "img-src": [SELF, "data:", "blob:", "https:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}
