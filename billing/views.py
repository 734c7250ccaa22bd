"""Billing pages, for MSP admins only (everyone else gets 404), and Stripe's webhook."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import (
    charts,
    exports,
    forms,
    month_run,
    reports,
    selectors,
    services,
    stripe_sync,
    subscriptions,
    tasks,
    webhooks,
)
from billing.models import InvoiceStatus
from billing.periods import parse_month
from portal.access import msp_admin_required
from portal.pagination import paginate
from portal.params import BadParameter, choice_param


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@msp_admin_required
def billing_home(request):
    context = {
        "summary": selectors.billing_summary(request.user),
        "mrr": reports.mrr_by_month(request.user, reports.last_months(2))[-1],
        "recent": selectors.invoices_for(request.user)[:10],
        "run_form": forms.RunMonthForm(
            initial={"month": f"{reports.default_report_month():%Y-%m}"}
        ),
        "stripe_enabled": stripe_sync.enabled(),
    }
    return render(request, "billing/home.html", context)


# --- invoices ---------------------------------------------------------------------------------


def _month_param(request, default):
    """``?month=YYYY-MM``, ``default`` when absent; anything else is a 400 saying so."""
    raw = request.GET.get("month", "")
    if not raw:
        return default
    try:
        return parse_month(raw)
    except ValueError as exc:
        raise BadParameter(f"month must be YYYY-MM ({exc}), not {raw[:40]!r}.") from None


def _invoice_filters(request):
    period = _month_param(request, None)
    return period, choice_param(request.GET, "status", InvoiceStatus.values)


@msp_admin_required
def billing_invoices(request):
    period, status = _invoice_filters(request)
    page = paginate(request, selectors.invoices_for(request.user, period=period, status=status))
    context = {
        "page": page,
        "period": period,
        "status": status,
        "statuses": InvoiceStatus.choices,
    }
    return render(request, "billing/invoice_list.html", context)


@msp_admin_required
def billing_invoices_csv(request):
    period, status = _invoice_filters(request)
    invoices = selectors.invoices_for(request.user, period=period, status=status)
    return exports.csv_response(
        "invoices.csv",
        ["number", "customer", "month", "status", "total", "currency", "finalized", "due", "paid"],
        (
            [
                i.number,
                i.customer.name,
                f"{i.period_start:%Y-%m}",
                i.status,
                i.total,
                i.currency,
                i.finalized_at and i.finalized_at.date(),
                i.due_on,
                i.paid_at and i.paid_at.date(),
            ]
            for i in invoices.iterator()
        ),
    )


@msp_admin_required
def billing_invoice_detail(request, invoice_pk: int):
    invoice = selectors.invoice_for(request.user, invoice_pk)
    context = {
        "invoice": invoice,
        "lines": selectors.invoice_lines(invoice),
        "stripe_enabled": stripe_sync.enabled(),
    }
    return render(request, "billing/invoice_detail.html", context)


@msp_admin_required
def billing_invoice_csv(request, invoice_pk: int):
    invoice = selectors.invoice_for(request.user, invoice_pk)
    rows = [
        [
            invoice.number,
            line.position,
            line.appliance.serial if line.appliance else "",
            line.category,
            line.description,
            line.quantity,
            line.unit_price,
            line.amount,
        ]
        for line in selectors.invoice_lines(invoice)
    ]
    rows.append([invoice.number, "", "", "total", "", "", "", invoice.total])
    return exports.csv_response(
        f"invoice-{invoice.number}.csv",
        [
            "invoice",
            "line",
            "appliance",
            "category",
            "description",
            "quantity",
            "unit_price",
            "amount",
        ],
        rows,
    )


def _invoice_action(request, invoice_pk: int, action, done: str):
    invoice = selectors.invoice_for(request.user, invoice_pk)
    try:
        result = action(invoice, actor=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect("billing_invoice_detail", invoice_pk=invoice.pk)
    messages.success(request, done)
    target = result if hasattr(result, "pk") else invoice
    return redirect("billing_invoice_detail", invoice_pk=target.pk)


@msp_admin_required
@require_POST
def billing_invoice_regenerate(request, invoice_pk: int):
    return _invoice_action(request, invoice_pk, services.regenerate_draft, "Draft regenerated.")


@msp_admin_required
@require_POST
def billing_invoice_finalize(request, invoice_pk: int):
    return _invoice_action(request, invoice_pk, services.finalize_invoice, "Invoice finalized.")


@msp_admin_required
@require_POST
def billing_invoice_void(request, invoice_pk: int):
    return _invoice_action(
        request, invoice_pk, services.void_and_replace, "Invoice voided; this is its replacement."
    )


@msp_admin_required
@require_POST
def billing_invoice_mark_paid(request, invoice_pk: int):
    invoice = selectors.invoice_for(request.user, invoice_pk)
    if services.mark_paid(invoice, actor=request.user, request=request, via="manual"):
        messages.success(request, "Invoice marked paid.")
    else:
        messages.error(request, "Only a finalized, unpaid invoice can be marked paid.")
    return redirect("billing_invoice_detail", invoice_pk=invoice.pk)


@msp_admin_required
@require_POST
def billing_invoice_push(request, invoice_pk: int):
    invoice = selectors.invoice_for(request.user, invoice_pk)
    if not stripe_sync.enabled() or invoice.status == InvoiceStatus.DRAFT:
        messages.error(request, "Stripe is off, or the invoice is not finalized.")
    else:
        tasks.push_invoice_to_stripe.delay(invoice.pk)
        messages.success(request, "Sending the invoice to Stripe.")
    return redirect("billing_invoice_detail", invoice_pk=invoice.pk)


@msp_admin_required
@require_POST
def billing_run_month(request):
    form = forms.RunMonthForm(request.POST)
    if form.is_valid():
        try:
            run = month_run.run_month(
                form.cleaned_data["month"], actor=request.user, request=request
            )
        except ValidationError as exc:
            messages.error(request, _error_text(exc))
        else:
            messages.success(
                request,
                f"{run.period:%B %Y}: {run.created} invoices made, "
                f"{run.already_there} already there.",
            )
            return redirect(f"{_url('billing_invoices')}?month={run.period:%Y-%m}")
    else:
        messages.error(request, "Choose a month.")
    return redirect("billing_home")


def _url(name: str) -> str:
    from django.urls import reverse

    return reverse(name)


# --- subscriptions and price book -------------------------------------------------------------


@msp_admin_required
def billing_subscriptions(request):
    page = paginate(request, selectors.subscriptions_for(request.user))
    return render(request, "billing/subscription_list.html", {"page": page})


@msp_admin_required
def billing_subscription_create(request):
    form = forms.SubscriptionForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            subscriptions.create_subscription(
                data.pop("appliance"), actor=request.user, request=request, **data
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Subscription added.")
            return redirect("billing_subscriptions")
    return render(request, "portal/form.html", {"form": form, "title": "New subscription"})


@msp_admin_required
def billing_subscription_end(request, subscription_pk: int):
    sub = selectors.subscription_for(request.user, subscription_pk)
    form = forms.EndSubscriptionForm(request.POST or None, initial={"ends_on": sub.ends_on})
    if request.method == "POST" and form.is_valid():
        try:
            subscriptions.end_subscription(
                sub, ends_on=form.cleaned_data["ends_on"], actor=request.user, request=request
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Subscription end date saved.")
            return redirect("billing_subscriptions")
    title = f"End the {sub.get_kind_display().lower()} of {sub.appliance.name}"
    return render(request, "portal/form.html", {"form": form, "title": title})


@msp_admin_required
def billing_price_books(request):
    return render(request, "billing/price_books.html", {"books": selectors.price_books()})


@msp_admin_required
def billing_price_book_create(request):
    form = forms.PriceBookForm(request.POST or None, current=selectors.latest_prices())
    if request.method == "POST" and form.is_valid():
        try:
            subscriptions.create_price_book(
                effective_from=form.cleaned_data["effective_from"],
                prices=form.prices(),
                note=form.cleaned_data["note"],
                actor=request.user,
                request=request,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Price book version added.")
            return redirect("billing_price_books")
    return render(request, "portal/form.html", {"form": form, "title": "New price book version"})


# --- reports ----------------------------------------------------------------------------------


def _report_month(request):
    return _month_param(request, None) or reports.default_report_month()


@msp_admin_required
def billing_reports(request):
    months = reports.last_months(12)
    month = _report_month(request)
    mrr = reports.mrr_by_month(request.user, months)
    revenue = reports.revenue_by_month(request.user, months)
    for row in mrr + revenue:
        row["label"] = f"{row['month']:%b %y}"
    context = {
        "mrr": mrr,
        "current_mrr": mrr[-1],
        "revenue": revenue,
        "categories": reports.CATEGORIES,
        "revenue_chart": charts.stacked_bars(revenue, reports.CATEGORIES, title="Revenue"),
        "mrr_chart": charts.stacked_bars(mrr, [("mrr", "MRR")], title="MRR"),
        "month": month,
        "consumers": reports.top_consumers(request.user, month),
        "aging": reports.unpaid_by_age(request.user),
    }
    return render(request, "billing/reports.html", context)


@msp_admin_required
def billing_report_mrr_csv(request):
    rows = reports.mrr_by_month(request.user, reports.last_months(12))
    return exports.csv_response(
        "mrr.csv",
        ["month", "mrr", "change", "change_percent"],
        ([f"{r['month']:%Y-%m}", r["mrr"], r["change"], r["change_pct"]] for r in rows),
    )


@msp_admin_required
def billing_report_revenue_csv(request):
    rows = reports.revenue_by_month(request.user, reports.last_months(12))
    keys = [c for c, _ in reports.CATEGORIES]
    return exports.csv_response(
        "revenue.csv",
        ["month", *keys, "total"],
        ([f"{r['month']:%Y-%m}", *(r[k] for k in keys), r["total"]] for r in rows),
    )


@msp_admin_required
def billing_report_consumers_csv(request):
    month = _report_month(request)
    rows = reports.top_consumers(request.user, month)
    columns = ["customer", "appliance", "serial", "model", "average_gb", "samples", "measured",
               "overage_billed"]  # fmt: skip
    return exports.csv_response(
        f"top-storage-{month:%Y-%m}.csv", columns, ([r[c] for c in columns] for r in rows)
    )


@msp_admin_required
def billing_report_unpaid_csv(request):
    rows = reports.unpaid_by_age(request.user)
    return exports.csv_response(
        "unpaid-by-age.csv",
        ["age", "invoices", "amount"],
        ([r["bucket"], r["count"], r["amount"]] for r in rows),
    )


# --- Stripe -----------------------------------------------------------------------------------


@csrf_exempt
def stripe_webhook(request):
    """Stripe's calls. Only a POST signed with STRIPE_WEBHOOK_SECRET, recently, gets through."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"], "Stripe webhook: signed POST only.")
    try:
        event = webhooks.verify(request.body, request.headers.get("Stripe-Signature"))
    except webhooks.BadEvent:
        return HttpResponseBadRequest("bad signature")
    outcome = webhooks.handle(event)
    return HttpResponse(outcome, content_type="text/plain")
