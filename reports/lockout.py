"""Sign-in lockout: the parts of django-axes that are Relevo's own.

django-axes counts failed sign-ins on ``/accounts/login/`` and
``/admin/login/`` (it hooks Django's ``authenticate()``, which both forms
call) and refuses a locked-out address in its authentication backend, before
any password is hashed. Two things are decided here:

* which address a request comes from: the same answer as for day files and
  throttles (``reports.addresses.client_ip``, worked out once per request),
  so ``X-Forwarded-For`` counts only from ``INVENTORY_TRUSTED_PROXIES`` and a
  client behind no proxy cannot escape its lock by sending one;
* what a refused sign-in gets: 429, ``Retry-After`` and a page that says when
  to try again, instead of axes' bare text;
* that a refused sign-in writes nothing (``LockoutHandler``).

The policy itself (count per address, limit, cool-off) is in settings and
docs/security.md.
"""

from __future__ import annotations

import datetime as dt
import math

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from reports import addresses


def client_address(request) -> str | None:
    """The address failed sign-ins are counted against (``AXES_CLIENT_IP_CALLABLE``).

    None when the peer has no usable address (a Unix socket): those requests
    then share one count, which is the cautious side.
    """
    return addresses.client_address(request)


class LockoutHandler(AxesDatabaseHandler):
    """axes' database handler, minus the write it does for a sign-in it already refused.

    For every failed sign-in axes first deletes expired attempt rows. For a
    refused one that is a write statement per request on the one SQLite
    writer the uploads queue for (reports.dbwrite), which a locked-out
    attacker could send as fast as they like. Expired rows are still deleted
    on every recorded failure and successful sign-in; they are never counted
    meanwhile (attempts are read with the cool-off threshold).
    """

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is not None and getattr(request, "axes_locked_out", False):
            request.axes_credentials = credentials
            user_locked_out.send("axes", request=request, username=get_client_username(request, credentials),
                                 ip_address=request.axes_ip_address)
            return
        super().user_login_failed(sender, credentials, request, **kwargs)


def lockout_ends(ip_address: str | None, *, now: dt.datetime | None = None) -> dt.datetime:
    """When the lock on *ip_address* lifts, given the failures still inside the cool-off.

    Each attempt row holds the time of its latest failure and how many it
    counts; the lock holds while the failures of rows younger than the
    cool-off add up to the limit. Rows age out oldest first, so the lock lifts
    when the one that brings the rest under the limit does.
    """
    now = now or timezone.now()
    cooloff = settings.AXES_COOLOFF_TIME
    rows = list(AccessAttempt.objects.filter(ip_address=ip_address, attempt_time__gt=now - cooloff)
                .order_by("attempt_time").values_list("attempt_time", "failures_since_start"))
    remaining = sum(failures for _, failures in rows)
    for attempt_time, failures in rows:
        remaining -= failures
        if remaining < settings.AXES_FAILURE_LIMIT:
            return attempt_time + cooloff
    return now + cooloff  # no row (cleared meanwhile): the cautious answer


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: 429 with ``Retry-After`` and a page that says how long."""
    wait = max((lockout_ends(getattr(request, "axes_ip_address", None)) - timezone.now()).total_seconds(), 1)
    minutes = math.ceil(wait / 60)
    # Rendered here: the axes middleware swaps it in after the view's response was rendered.
    response = render(request, "registration/locked_out.html", {
        "minutes": minutes,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_minutes": math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60),
    }, status=429)
    response["Retry-After"] = str(math.ceil(wait))
    response["Cache-Control"] = "no-store"
    return response
