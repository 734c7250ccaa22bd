"""One way to page a list view."""

from django.core.paginator import Page, Paginator

from portal.params import int_param


def paginate(request, queryset, per_page: int = 50) -> Page:
    """The page of ``queryset`` that ``?page=`` asks for (the last one if out of range; not
    a whole number from 1: BadParameter, a 400)."""
    number = int_param(request.GET, "page", default=1, minimum=1)
    return Paginator(queryset, per_page).get_page(number)
