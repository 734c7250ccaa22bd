from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from portal import api, mfa_views, views
from statusapi.api import FleetView

handler400 = "portal.params.bad_request"

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("accounts/password_reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password_reset/done/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("accounts/two-factor/", mfa_views.mfa_verify, name="mfa_verify"),
    path("accounts/two-factor/setup/", mfa_views.mfa_enrol, name="mfa_enrol"),
    path(
        "accounts/two-factor/recovery-codes/",
        mfa_views.mfa_recovery_codes,
        name="mfa_recovery_codes",
    ),
    path("users/lockouts/", views.lockout_list, name="lockout_list"),
    path("users/lockouts/<int:lockout_pk>/lift/", views.lockout_lift, name="lockout_lift"),
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/new/", views.customer_create, name="customer_create"),
    path("customers/<int:customer_pk>/", views.customer_detail, name="customer_detail"),
    path("customers/<int:customer_pk>/edit/", views.customer_edit, name="customer_edit"),
    path("customers/<int:customer_pk>/sites/new/", views.site_create, name="site_create"),
    path("users/", views.user_list, name="user_list"),
    path("users/new/", views.user_create, name="user_create"),
    path("users/<int:user_pk>/", views.user_edit, name="user_edit"),
    path("audit/", views.audit_list, name="audit_list"),
    path("appliances/", include("appliances.urls")),
    path("restore/", include("restores.urls")),
    path("billing/", include("billing.urls")),
    path("offsite/", include("offsite.urls")),
    path("fleet/", include("monitoring.urls")),
    path("api-keys/", include("statusapi.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/status/fleet/", FleetView.as_view(), name="api-status-fleet"),
    path("api/", include(api.router.urls)),
    path("admin/", admin.site.urls),
]
