"""A paginator that counts a long list only up to a cap, as large product lists do ("10,000+ hosts").

An exact ``COUNT(*)`` reads every matching row (or index entry) to print one
number: every host whose search text holds "10.0.1", or the three million
rows of the admin's snapshot list. Counting stops at ``cap`` + 1 rows
instead (``SELECT COUNT(*) FROM (... LIMIT cap + 1)``), and the page says
"``cap``+". The rows listed do not change: a page inside the cap is the
same slice of the same ordering, and asking for a page past the cap (the
"Last" link) counts exactly, once, so the last page is the real one.
"""

from __future__ import annotations

from django.core.paginator import EmptyPage, Paginator
from django.utils.functional import cached_property

COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    """``Paginator`` whose ``count`` stops at ``cap`` + 1; ``capped`` says the list holds more than ``cap`` rows.

    ``count_list``, if given, is what is counted instead of the listed
    rows: the same rows in a form its database counts faster (the host
    search's match read from its own index); a list with a
    ``count_up_to(limit)`` method counts itself that far. The signature is
    ``Paginator``'s, so the admin can take the class as its ``paginator``.
    """

    cap = COUNT_CAP

    def __init__(self, object_list, per_page, orphans=0, allow_empty_first_page=True, *, cap: int | None = None,
                 count_list=None):
        super().__init__(object_list, per_page, orphans, allow_empty_first_page)
        if cap is not None:
            self.cap = cap
        self.count_list = object_list if count_list is None else count_list
        self.exact = False

    @cached_property
    def count(self) -> int:
        rows = self.count_list
        if hasattr(rows, "count_up_to"):
            # A list that counts itself up to a limit (process search's hosts, ``reports.selectors``).
            return rows.count() if self.exact else rows.count_up_to(self.cap + 1)
        if not hasattr(rows, "query"):
            return len(rows)
        if self.exact:
            return rows.count()
        # Unordered: the count needs no ORDER BY, and with one the LIMIT would sort every match first.
        return rows.order_by()[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        """Whether the list has more rows than the count went to (the page prints "cap+")."""
        return not self.exact and self.count > self.cap

    def validate_number(self, number):
        """A number past the capped count's pages is checked against the exact count, which it then takes."""
        try:
            return super().validate_number(number)
        except EmptyPage:
            if not self.capped:
                raise
            self._count_exactly()
            return super().validate_number(number)

    def page(self, number):
        """A page that reaches past the cap counts exactly first, so it ends at the real last row."""
        number = self.validate_number(number)
        if self.capped and number * self.per_page > self.cap:
            self._count_exactly()
            number = self.validate_number(number)
        return super().page(number)

    def _count_exactly(self) -> None:
        self.exact = True
        for name in ("count", "num_pages"):
            self.__dict__.pop(name, None)
