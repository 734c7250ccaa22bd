from django.urls import path

from restores import views

urlpatterns = [
    path("", views.restore_home, name="restore_home"),
    path("servers/<int:server_pk>/", views.server_points, name="restore_server_points"),
]
