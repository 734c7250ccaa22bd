"""One way to page a list view."""

from django.core.paginator import Page, Paginator

from portal.params import int_param


def paginate(request, queryset, per_page: int = 50, count: int | None = None) -> Page:
    """The page of ``queryset`` that ``?page=`` asks for (the last one if out of range; not
    a whole number from 1: BadParameter, a 400). ``count``: the number of rows when the
    caller knows it already (spares a COUNT over a large table)."""
    number = int_param(request.GET, "page", default=1, minimum=1)
    paginator = Paginator(queryset, per_page)
    if count is not None:
        paginator.count = count  # Paginator.count is a cached_property: this is its value
    return paginator.get_page(number)
