"""Tenancy pages: dashboard, customers, sites, users, audit log, sign-in."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from appliances import selectors as appliance_selectors
from portal import audit, selectors, services, signin
from portal.access import admins_required, any_role_required, msp_admin_required, msp_required
from portal.forms import CustomerForm, CustomerSecurityForm, SiteForm, UserForm
from portal.models import Customer, User
from portal.pagination import paginate
from portal.tenancy import get_for_user


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"

    def form_valid(self, form):
        response = super().form_valid(form)
        audit.record(
            form.get_user(),
            "auth.login",
            form.get_user(),
            request=self.request,
            customer=form.get_user().customer,
        )
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset request, limited per address and per e-mail. Over the limit the page
    answers 429 and sends nothing; the answer never says whether the e-mail is known."""

    def form_valid(self, form):
        if not signin.reset_request_allowed(self.request, form.cleaned_data["email"]):
            audit.record(
                None,
                "auth.password_reset_throttled",
                request=self.request,
                detail={"email": form.cleaned_data["email"][:254]},
            )
            form.add_error("email", "Too many password-reset requests. Try again later.")
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().form_valid(form)


@any_role_required
def home(request):
    if not request.user.is_msp:
        return redirect("restore_home")
    context = appliance_selectors.dashboard_summary(request.user)
    return render(request, "portal/home.html", context)


@msp_required
def customer_list(request):
    page = paginate(request, selectors.customers_with_counts(request.user))
    return render(request, "portal/customer_list.html", {"page": page})


@msp_admin_required
def customer_create(request):
    form = CustomerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        customer = services.create_customer(
            actor=request.user, request=request, **form.cleaned_data
        )
        messages.success(request, f"Customer {customer.name} created.")
        return redirect("customer_detail", customer_pk=customer.pk)
    return render(request, "portal/form.html", {"form": form, "title": "New customer"})


@msp_required
def customer_detail(request, customer_pk: int):
    customer = get_for_user(Customer, request.user, pk=customer_pk)
    context = {
        "customer": customer,
        "sites": customer.sites.all(),
        "appliances": appliance_selectors.appliances_for(request.user).filter(customer=customer),
    }
    return render(request, "portal/customer_detail.html", context)


@admins_required
def customer_edit(request, customer_pk: int):
    """MSP admins edit every field; a customer admin only their own customer's sign-in rule."""
    customer = get_for_user(Customer, request.user, pk=customer_pk)
    form_class = CustomerForm if request.user.is_msp else CustomerSecurityForm
    form = form_class(request.POST or None, instance=customer)
    if request.method == "POST" and form.is_valid():
        services.update_customer(customer, actor=request.user, request=request, **form.cleaned_data)
        messages.success(request, "Customer saved.")
        if not request.user.is_msp:
            return redirect("user_list")
        return redirect("customer_detail", customer_pk=customer.pk)
    return render(request, "portal/form.html", {"form": form, "title": f"Edit {customer.name}"})


@msp_admin_required
def site_create(request, customer_pk: int):
    customer = get_for_user(Customer, request.user, pk=customer_pk)
    form = SiteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.create_site(customer, actor=request.user, request=request, **form.cleaned_data)
        messages.success(request, "Site added.")
        return redirect("customer_detail", customer_pk=customer.pk)
    return render(
        request, "portal/form.html", {"form": form, "title": f"New site for {customer.name}"}
    )


@admins_required
def user_list(request):
    page = paginate(request, selectors.users_visible_to(request.user))
    return render(request, "portal/user_list.html", {"page": page})


@admins_required
def user_create(request):
    form = UserForm(request.POST or None, actor=request.user)
    if request.method == "POST" and form.is_valid():
        user = form.save(commit=False)
        services.save_user(
            user, actor=request.user, request=request, password=form.cleaned_data.get("password1")
        )
        messages.success(request, f"User {user.username} created.")
        return redirect("user_list")
    return render(request, "portal/form.html", {"form": form, "title": "New user"})


@admins_required
def user_edit(request, user_pk: int):
    user = get_for_user(User, request.user, pk=user_pk)
    form = UserForm(request.POST or None, instance=user, actor=request.user)
    if request.method == "POST" and form.is_valid():
        user = form.save(commit=False)
        services.save_user(
            user, actor=request.user, request=request, password=form.cleaned_data.get("password1")
        )
        messages.success(request, "User saved.")
        return redirect("user_list")
    return render(request, "portal/form.html", {"form": form, "title": f"Edit {user.username}"})


@admins_required
def audit_list(request):
    page = paginate(request, selectors.audit_events_for(request.user), per_page=100)
    return render(request, "portal/audit_list.html", {"page": page})


@msp_admin_required
def lockout_list(request):
    context = {"lockouts": signin.current_lockouts(), "failure_limit": settings.AXES_FAILURE_LIMIT}
    return render(request, "portal/lockout_list.html", context)


@msp_admin_required
@require_POST
def lockout_lift(request, lockout_pk: int):
    attempt = signin.lift_lockout(lockout_pk, actor=request.user, request=request)
    if attempt is not None:
        messages.success(
            request, f"{attempt.username} from {attempt.ip_address} may sign in again."
        )
    return redirect("lockout_list")
