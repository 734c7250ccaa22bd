from django.urls import path

from appliances import retention_views, views

urlpatterns = [
    path("", views.appliance_list, name="appliance_list"),
    path("new/", views.appliance_create, name="appliance_create"),
    path("<int:appliance_pk>/", views.appliance_detail, name="appliance_detail"),
    path("<int:appliance_pk>/enrol/", views.appliance_enrol, name="appliance_enrol"),
    path("<int:appliance_pk>/key/", views.appliance_key, name="appliance_key"),
    path("<int:appliance_pk>/poll/", views.appliance_poll, name="appliance_poll"),
    path("<int:appliance_pk>/servers/new/", views.server_create, name="server_create"),
    path("servers/<int:server_pk>/", views.server_detail, name="server_detail"),
    path(
        "servers/<int:server_pk>/retention/",
        retention_views.retention_edit,
        name="retention_edit",
    ),
    path(
        "servers/<int:server_pk>/retention/simulate/",
        retention_views.retention_simulate,
        name="retention_simulate",
    ),
    path("servers/<int:server_pk>/backup/", views.server_backup_now, name="server_backup_now"),
    path("servers/<int:server_pk>/verify/", views.server_verify_now, name="server_verify_now"),
    path("jobs/", views.job_list, name="job_list"),
    path("jobs/<int:job_pk>/", views.job_detail, name="job_detail"),
    path("jobs/<int:job_pk>/progress/", views.job_progress, name="job_progress"),
    path("alerts/", views.alert_list, name="alert_list"),
]
