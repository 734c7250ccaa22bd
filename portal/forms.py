from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import SetPasswordMixin

from portal.models import Customer, Role, Site, User


class CustomerForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = ["name", "contact_email", "phone", "is_active", "require_mfa"]


class CustomerSecurityForm(forms.ModelForm):
    """What a customer's own admin may change about their customer."""

    class Meta:
        model = Customer
        fields = ["require_mfa"]


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
        elif p1:
            self._validate_password(p1, data)
        return data

    def _validate_password(self, password: str, data: dict) -> None:
        # The validators compare the password with the user's name and e-mail: give them the
        # values being saved, not the old ones.
        candidate = User(
            username=data.get("username") or self.instance.username,
            first_name=data.get("first_name", ""),
            last_name=data.get("last_name", ""),
            email=data.get("email", ""),
        )
        try:
            password_validation.validate_password(password, candidate)
        except forms.ValidationError as error:
            self.add_error("password1", error)
