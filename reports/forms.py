"""Query-string forms of the pages: they parse and bound what a URL may ask for.

A bad value (unknown status, a sort column that does not exist) is dropped
rather than answered with an error, so a hand-edited or stale bookmark still
shows a useful page.
"""

from django import forms

from reports import selectors

STATUS_CHOICES = [("", "Any status")] + [(s, s.capitalize()) for s in selectors.HOST_STATUSES]
PROCESS_SORT_CHOICES = [
    ("cpu", "CPU"), ("memory", "Memory"), ("name", "Name"), ("user", "User"), ("pid", "PID"),
]


class HostFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=256, label="Search",
                        widget=forms.TextInput(attrs={"placeholder": "hostname, IP or host id", "type": "search"}))
    os = forms.ChoiceField(required=False, label="OS")
    status = forms.ChoiceField(required=False, label="Status", choices=STATUS_CHOICES)
    sort = forms.CharField(required=False, max_length=32, widget=forms.HiddenInput)
    software = forms.CharField(
        required=False, max_length=1024, label="Has software",
        widget=forms.TextInput(attrs={"placeholder": "exact name, e.g. openssl", "type": "search"}),
    )
    port = forms.IntegerField(required=False, min_value=1, max_value=65_535, label="Listens on port")
    disk_full = forms.BooleanField(required=False, label="A disk over 90% full")

    def __init__(self, *args, os_names: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["os"].choices = [("", "Any OS")] + [(name, name or "(unknown)") for name in os_names if name]

    def value(self, name: str) -> str:
        """The cleaned value, or '' when the field is invalid (see the module docstring)."""
        if not self.is_bound:
            return ""
        self.is_valid()
        return self.cleaned_data.get(name) or ""


class ProcessFilterForm(forms.Form):
    pq = forms.CharField(required=False, max_length=256, label="Filter processes",
                         widget=forms.TextInput(attrs={"placeholder": "name, user or command line", "type": "search"}))
    psort = forms.ChoiceField(required=False, label="Sort by", choices=PROCESS_SORT_CHOICES)
    tree = forms.BooleanField(required=False, label="Parent/child view")

    def value(self, name: str):
        self.is_valid()
        return self.cleaned_data.get(name) or ""


class ProcessSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=256, label="Process name or command line",
                        widget=forms.TextInput(attrs={"placeholder": "e.g. nginx or --port 5432", "type": "search"}))


class SoftwareSearchForm(forms.Form):
    """The Software page: the fleet list (``q`` filters names), or with ``name`` the hosts that have it."""

    q = forms.CharField(required=False, max_length=256, label="Package name",
                        widget=forms.TextInput(attrs={"placeholder": "e.g. openssl", "type": "search"}))
    name = forms.CharField(required=False, max_length=1024, widget=forms.HiddenInput)
    version = forms.CharField(required=False, max_length=256, widget=forms.HiddenInput)

    def value(self, name: str) -> str:
        self.is_valid()
        return self.cleaned_data.get(name) or ""
