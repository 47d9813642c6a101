# Production image: gunicorn for the web, the same image runs the Celery worker and beat
# (see docker-compose.yml). Build: docker build -t cem .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    CEM_ENV=production \
    MEDIA_ROOT=/data/media

WORKDIR /app

RUN groupadd --system cem && useradd --system --gid cem --home-dir /app --no-create-home cem

COPY . /app
# settings.py finds templates/ and static/ next to the cem package, so the app runs from /app
# (PYTHONPATH) and `pip install .` brings the dependencies.
RUN pip install . \
    && CEM_ENV=production SECRET_KEY=collectstatic-only-not-a-real-key ALLOWED_HOSTS=localhost \
       python manage.py collectstatic --noinput \
    && mkdir -p /data/media && chown -R cem:cem /data

USER cem
EXPOSE 8000

CMD ["gunicorn", "cem.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--threads", "4", "--keep-alive", "5", "--access-logfile", "-"]
