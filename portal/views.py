"""Tenancy pages: dashboard, customers, sites, users, audit log, sign-in."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render

from appliances import selectors as appliance_selectors
from portal import audit, selectors, services
from portal.access import admins_required, any_role_required, msp_admin_required, msp_required
from portal.forms import CustomerForm, SiteForm, UserForm
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


@msp_admin_required
def customer_edit(request, customer_pk: int):
    customer = get_for_user(Customer, request.user, pk=customer_pk)
    form = CustomerForm(request.POST or None, instance=customer)
    if request.method == "POST" and form.is_valid():
        services.update_customer(customer, actor=request.user, request=request, **form.cleaned_data)
        messages.success(request, "Customer saved.")
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
