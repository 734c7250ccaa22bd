from django.urls import path

from monitoring import notify_views, views

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
    path("notifications/", notify_views.notifications, name="notifications"),
    path("notifications/recipients/new/", notify_views.recipient_new, name="recipient_new"),
    path(
        "notifications/recipients/<int:recipient_pk>/delete/",
        notify_views.recipient_delete,
        name="recipient_delete",
    ),
    path("notifications/webhooks/new/", notify_views.endpoint_new, name="webhook_new"),
    path(
        "notifications/webhooks/<int:endpoint_pk>/",
        notify_views.endpoint_detail,
        name="webhook_endpoint",
    ),
    path(
        "notifications/webhooks/<int:endpoint_pk>/rotate/",
        notify_views.endpoint_rotate,
        name="webhook_rotate",
    ),
    path(
        "notifications/webhooks/<int:endpoint_pk>/enable/",
        notify_views.endpoint_enable,
        name="webhook_enable",
    ),
    path(
        "notifications/webhooks/<int:endpoint_pk>/delete/",
        notify_views.endpoint_delete,
        name="webhook_delete",
    ),
    path(
        "notifications/deliveries/<int:delivery_pk>/replay/",
        notify_views.delivery_replay,
        name="delivery_replay",
    ),
]
