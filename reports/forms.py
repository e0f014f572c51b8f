"""Query-string forms of the pages: they parse and bound what a URL may ask for.

Every page reads its query string through one of these forms and
``QueryForm.value``: a bad value (unknown status, a sort column that does not
exist, an over-long search) is dropped rather than answered with an error, so
a hand-edited or stale bookmark still shows a useful page. The read API takes
the same parameters with the same rules (``SEARCH_MAX_LENGTH``,
``HOST_SORTS``, ``selectors.HOST_STATUSES``) through its filter serializers
(``reports.api.serializers``), which answer a bad value with a 400 instead.
"""

import datetime as dt

from django import forms

from reports import host_table, processes, selectors

SEARCH_MAX_LENGTH = 256
# Every host ordering, ascending and with "-" for descending: the page's ?sort= and the API's ?ordering=.
HOST_SORTS = host_table.SORTS
HOST_PAGE_SIZES = (25, 50, 100, 200)
HOST_PAGE_SIZE = 50
STATUS_CHOICES = [("", "Any status")] + [(s, s.capitalize()) for s in selectors.HOST_STATUSES]
PROCESS_SORT_CHOICES = [
    ("cpu", "CPU"), ("memory", "Memory"), ("name", "Name"), ("user", "User"), ("pid", "PID"), ("status", "Status"),
]


class ReversibleChoiceField(forms.ChoiceField):
    """A sort order, or the same with a leading "-": the column headers link to the reversed order."""

    def valid_value(self, value) -> bool:
        return super().valid_value(str(value).removeprefix("-"))


class QueryForm(forms.Form):
    """A page's query string: ``value(name)`` is the cleaned value, or empty when that field is invalid."""

    def value(self, name: str):
        if not self.is_bound:
            return ""
        self.is_valid()
        return self.cleaned_data.get(name) or ""


class HostFilterForm(QueryForm):
    q = forms.CharField(required=False, max_length=SEARCH_MAX_LENGTH, label="Search",
                        widget=forms.TextInput(attrs={"placeholder": "name, address, OS, version or CPU",
                                                      "type": "search"}))
    os = forms.ChoiceField(required=False, label="OS")
    os_version = forms.ChoiceField(required=False, label="Version")
    status = forms.ChoiceField(required=False, label="Status", choices=STATUS_CHOICES)
    sort = forms.ChoiceField(required=False, choices=[(name, name) for name in HOST_SORTS], widget=forms.HiddenInput)
    # The table's shape, kept in the query string so a link or bookmark keeps it (no JavaScript).
    col = forms.MultipleChoiceField(
        required=False, label="Columns", widget=forms.CheckboxSelectMultiple,
        choices=[(c.key, c.label) for c in host_table.COLUMNS],
    )
    # The default's value is empty, so the select shows it when the query string names none.
    per_page = forms.TypedChoiceField(required=False, label="Rows a page", coerce=int, empty_value=None,
                                      choices=[("" if n == HOST_PAGE_SIZE else n, n) for n in HOST_PAGE_SIZES])
    software = forms.CharField(
        required=False, max_length=1024, label="Has software",
        widget=forms.TextInput(attrs={"placeholder": "exact name, e.g. openssl", "type": "search"}),
    )
    port = forms.IntegerField(required=False, min_value=1, max_value=65_535, label="Listens on port")
    disk_full = forms.BooleanField(required=False, label="A disk over 90% full")
    identity_conflict = forms.BooleanField(required=False, label="Identity conflict (two machines, one id)")

    def __init__(self, *args, os_names: list[str] = (), os_versions: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["os"].choices = [("", "Any OS")] + [(name, name or "(unknown)") for name in os_names if name]
        self.fields["os_version"].choices = [("", "Any version")] + [(v, v) for v in os_versions if v]


class ProcessFilterForm(QueryForm):
    pq = forms.CharField(required=False, max_length=SEARCH_MAX_LENGTH, label="Filter processes",
                         widget=forms.TextInput(attrs={"placeholder": "name or command line", "type": "search"}))
    # The process search's ``match``, so its name-only links show what it found; the page's default comes first.
    match = forms.ChoiceField(required=False, label="Match", choices=[
        (processes.MATCH_CMDLINE, "Name or command line"), (processes.MATCH_NAME, "Process name")])
    psort = ReversibleChoiceField(required=False, label="Sort by", choices=PROCESS_SORT_CHOICES)
    tree = forms.BooleanField(required=False, label="Parent/child view")
    kthreads = forms.BooleanField(required=False, label="Show kernel threads")
    ppage = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


# The longest time range a process search takes: a month of history, read from the runs' index.
PROCESS_RANGE_MAX = dt.timedelta(days=31)
PROCESS_MATCH_CHOICES = [(processes.MATCH_NAME, "Process name"), (processes.MATCH_CMDLINE, "Name or command line")]


def process_range_errors(since: dt.datetime | None, until: dt.datetime | None) -> dict[str, str]:
    """What is wrong with a process search's range (empty: nothing): the page and the API share the rule."""
    if since is not None and until is not None:
        if since > until:
            return {"until": "The end of the range is before its start."}
        if until - since > PROCESS_RANGE_MAX:
            return {"until": f"A range is at most {PROCESS_RANGE_MAX.days} days long."}
    return {}


def process_range(since: dt.datetime | None, until: dt.datetime | None,
                  now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A valid range made whole: "from" alone runs to *now*, "to" alone is that moment; neither is "now"."""
    if since is None and until is None:
        return None, None
    if until is None:
        return since, max(since, now)
    return (until if since is None else since), until


class ProcessSearchForm(forms.Form):
    """The process search page: a needle, name-only or command line, and an optional time range.

    Unlike the other pages' forms, a bad range is not dropped: the page
    answers 400 and says what is wrong, as a silently ignored date would show
    a different question's answer.
    """

    q = forms.CharField(required=False, max_length=SEARCH_MAX_LENGTH, label="Process",
                        widget=forms.TextInput(attrs={"placeholder": "e.g. nginx or --port 5432", "type": "search"}))
    match = forms.ChoiceField(required=False, label="Match", choices=PROCESS_MATCH_CHOICES)
    since = forms.DateTimeField(required=False, label="Ran from",
                                input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))
    until = forms.DateTimeField(required=False, label="to",
                                input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))

    def clean(self):
        cleaned = super().clean()
        for field, message in process_range_errors(cleaned.get("since"), cleaned.get("until")).items():
            self.add_error(field, message)
        return cleaned


class SoftwareSearchForm(QueryForm):
    """The Software page: the fleet list (``q`` filters names), or with ``name`` the hosts that have it."""

    q = forms.CharField(required=False, max_length=SEARCH_MAX_LENGTH, label="Package name",
                        widget=forms.TextInput(attrs={"placeholder": "e.g. openssl", "type": "search"}))
    name = forms.CharField(required=False, max_length=1024, widget=forms.HiddenInput)
    version = forms.CharField(required=False, max_length=256, widget=forms.HiddenInput)
