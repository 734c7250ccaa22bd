"""The error billing's writes raise when a rule or an invoice's state forbids them."""

from django.core.exceptions import ValidationError


class BillingError(ValidationError):
    """A billing action that the invoice's state does not allow."""
