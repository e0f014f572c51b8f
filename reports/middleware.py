"""Security headers Django 5.2 does not send by itself, on every response.

``SecurityMiddleware`` covers HSTS, nosniff, Referrer-Policy and COOP, and
``XFrameOptionsMiddleware`` covers framing; this adds a Content-Security-Policy
(no inline scripts, no third-party origins: Swagger UI is served from local
files) and a Permissions-Policy that turns off powerful browser features the
pages never use.
"""

from __future__ import annotations

from django.conf import settings

PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.INVENTORY_CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        if "Permissions-Policy" not in response:
            response["Permissions-Policy"] = PERMISSIONS_POLICY
        return response
