from django.urls import path

from billing import views

urlpatterns = [
    path("", views.billing_home, name="billing_home"),
    path("invoices/", views.billing_invoices, name="billing_invoices"),
    path("invoices.csv", views.billing_invoices_csv, name="billing_invoices_csv"),
    path("invoices/run/", views.billing_run_month, name="billing_run_month"),
    path("invoices/<int:invoice_pk>/", views.billing_invoice_detail, name="billing_invoice_detail"),
    path("invoices/<int:invoice_pk>/csv/", views.billing_invoice_csv, name="billing_invoice_csv"),
    path(
        "invoices/<int:invoice_pk>/regenerate/",
        views.billing_invoice_regenerate,
        name="billing_invoice_regenerate",
    ),
    path(
        "invoices/<int:invoice_pk>/finalize/",
        views.billing_invoice_finalize,
        name="billing_invoice_finalize",
    ),
    path(
        "invoices/<int:invoice_pk>/void/", views.billing_invoice_void, name="billing_invoice_void"
    ),
    path(
        "invoices/<int:invoice_pk>/mark-paid/",
        views.billing_invoice_mark_paid,
        name="billing_invoice_mark_paid",
    ),
    path(
        "invoices/<int:invoice_pk>/push/", views.billing_invoice_push, name="billing_invoice_push"
    ),
    path("subscriptions/", views.billing_subscriptions, name="billing_subscriptions"),
    path(
        "subscriptions/new/",
        views.billing_subscription_create,
        name="billing_subscription_create",
    ),
    path(
        "subscriptions/<int:subscription_pk>/end/",
        views.billing_subscription_end,
        name="billing_subscription_end",
    ),
    path("price-book/", views.billing_price_books, name="billing_price_books"),
    path("price-book/new/", views.billing_price_book_create, name="billing_price_book_create"),
    path("reports/", views.billing_reports, name="billing_reports"),
    path("reports/mrr.csv", views.billing_report_mrr_csv, name="billing_report_mrr_csv"),
    path(
        "reports/revenue.csv", views.billing_report_revenue_csv, name="billing_report_revenue_csv"
    ),
    path(
        "reports/top-storage.csv",
        views.billing_report_consumers_csv,
        name="billing_report_consumers_csv",
    ),
    path("reports/unpaid.csv", views.billing_report_unpaid_csv, name="billing_report_unpaid_csv"),
    path("stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
]
