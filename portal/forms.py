from django import forms
from django.contrib.auth.forms import SetPasswordMixin

from portal.models import Customer, Role, Site, User


class CustomerForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = ["name", "contact_email", "phone", "is_active"]


class SiteForm(forms.ModelForm):
    class Meta:
        model = Site
        fields = ["name", "address", "timezone"]


class UserForm(forms.ModelForm):
    """Create or edit a user. Which roles and customers are offered depends on who asks."""

    password1, password2 = SetPasswordMixin.create_password_fields(
        label1="Password", label2="Password (again)"
    )

    class Meta:
        model = User
        fields = ["username", "first_name", "last_name", "email", "role", "customer", "is_active"]

    def __init__(self, *args, actor: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.fields["customer"].queryset = Customer.objects.for_user(actor)
        if not actor.is_msp:
            self.fields["role"].choices = [
                (Role.CUSTOMER_ADMIN.value, Role.CUSTOMER_ADMIN.label),
                (Role.CUSTOMER_USER.value, Role.CUSTOMER_USER.label),
            ]
            del self.fields["customer"]
        if self.instance.pk:
            self.fields["password1"].required = False
            self.fields["password2"].required = False

    def clean(self):
        data = super().clean()
        role = data.get("role")
        customer = data.get("customer") if self.actor.is_msp else self.actor.customer
        if role in (Role.MSP_ADMIN, Role.TECHNICIAN) and customer is not None:
            self.add_error("customer", "MSP staff do not belong to a customer.")
        if role in (Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER) and customer is None:
            self.add_error("customer", "A customer's user must belong to a customer.")
        p1, p2 = data.get("password1"), data.get("password2")
        if (p1 or p2) and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        return data
