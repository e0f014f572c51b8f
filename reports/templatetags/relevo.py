"""Template helpers for the pages: query-string links and human-friendly values."""

from django import template
from django.template.defaultfilters import filesizeformat

register = template.Library()


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current query string with *changes* applied ('' or None removes a key), e.g. for sort links."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in ("", None):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.filter
def bytes_or_dash(value) -> str:
    return "–" if value is None else filesizeformat(value)


@register.filter
def join_cmdline(value) -> str:
    return " ".join(value or ())


@register.filter
def value_or_dash(value) -> str:
    return "–" if value in (None, "") else str(value)
