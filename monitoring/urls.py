from django.urls import path

from monitoring import views

urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("retention/", views.fleet_retention, name="fleet_retention"),
    path("servers/<int:server_pk>/retention/", views.server_retention, name="server_retention"),
    path("alerts/<int:alert_pk>/acknowledge/", views.alert_acknowledge, name="alert_acknowledge"),
    path("maintenance/", views.maintenance_list, name="maintenance_list"),
    path(
        "maintenance/appliances/<int:appliance_pk>/new/",
        views.maintenance_appliance,
        name="maintenance_appliance",
    ),
    path(
        "maintenance/customers/<int:customer_pk>/new/",
        views.maintenance_customer,
        name="maintenance_customer",
    ),
    path("maintenance/<int:window_pk>/end/", views.maintenance_end, name="maintenance_end"),
]
