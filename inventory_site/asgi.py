"""ASGI entry point, for servers that prefer it; Relevo is served by gunicorn over WSGI."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_site.settings")
application = get_asgi_application()
