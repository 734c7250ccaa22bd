"""The navigation bar: what each role may open."""

from portal.models import Role

_NAV = [
    # (label, url name, roles)
    ("Dashboard", "home", {Role.MSP_ADMIN, Role.TECHNICIAN}),
    ("Fleet", "fleet", {Role.MSP_ADMIN, Role.TECHNICIAN, Role.CUSTOMER_ADMIN}),
    ("Customers", "customer_list", {Role.MSP_ADMIN, Role.TECHNICIAN}),
    ("Appliances", "appliance_list", {Role.MSP_ADMIN, Role.TECHNICIAN}),
    ("Jobs", "job_list", {Role.MSP_ADMIN, Role.TECHNICIAN}),
    ("Alerts", "alert_list", {Role.MSP_ADMIN, Role.TECHNICIAN}),
    ("Maintenance", "maintenance_list", {Role.MSP_ADMIN, Role.TECHNICIAN}),
    ("Notifications", "notifications", {Role.MSP_ADMIN}),
    ("Restore files", "restore_home", set(Role)),
    ("Off-site", "offsite_home", set(Role)),
    ("Vaults", "vault_list", {Role.MSP_ADMIN}),
    ("Billing", "billing_home", {Role.MSP_ADMIN}),
    ("API keys", "apikey_list", {Role.MSP_ADMIN}),
    ("Users", "user_list", {Role.MSP_ADMIN, Role.CUSTOMER_ADMIN}),
    ("Audit log", "audit_list", {Role.MSP_ADMIN, Role.CUSTOMER_ADMIN}),
]


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    from django.urls import NoReverseMatch, reverse

    items = []
    for label, name, roles in _NAV:
        if user.role in roles:
            try:
                items.append((label, reverse(name)))
            except NoReverseMatch:
                continue
    return {"nav_items": items}
