import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cem.settings")
# Repeated dashboard-panel reads are replayed in front of Django when nothing changed (cem.fast_reads).
application = get_wsgi_application()

from cem.fast_reads import FastReads  # noqa: E402 - needs the settings configured above

application = FastReads(application)
