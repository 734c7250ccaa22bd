"""Billing: price book, subscriptions, usage, invoices (built by the billing issue)."""
