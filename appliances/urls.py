from django.urls import path

from appliances import views

urlpatterns = [
    path("", views.appliance_list, name="appliance_list"),
    path("<int:appliance_pk>/", views.appliance_detail, name="appliance_detail"),
    path("servers/<int:server_pk>/", views.server_detail, name="server_detail"),
    path("jobs/", views.job_list, name="job_list"),
    path("jobs/<int:job_pk>/", views.job_detail, name="job_detail"),
    path("alerts/", views.alert_list, name="alert_list"),
]
