"""One way to page a list view."""

from django.core.paginator import Page, Paginator


def paginate(request, queryset, per_page: int = 50) -> Page:
    """The page of ``queryset`` that ``?page=`` asks for (the last one if out of range)."""
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))
