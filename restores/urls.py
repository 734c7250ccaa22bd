from django.urls import path

from restores import views, vm_views

urlpatterns = [
    path("", views.restore_home, name="restore_home"),
    path("servers/<int:server_pk>/", views.server_points, name="restore_server_points"),
    path("points/<int:point_pk>/", views.browse, name="restore_browse"),
    path("points/<int:point_pk>/search/", views.search, name="restore_search"),
    path("points/<int:point_pk>/download/", views.download_selected, name="restore_selected"),
    path("points/<int:point_pk>/put-back/", views.put_back, name="restore_put_back"),
    path("points/<int:point_pk>/volume/", views.volume, name="restore_volume"),
    path("download/<str:token>/", views.download, name="restore_download"),
    path("jobs/<int:job_pk>/", views.job, name="restore_job"),
    path("jobs/<int:job_pk>/progress/", views.job_progress, name="restore_job_progress"),
    path("jobs/<int:job_pk>/image/", views.export_download, name="restore_export_download"),
    path("audit/", views.restore_audit, name="restore_audit"),
    path("users/<int:user_pk>/grants/", views.restore_grants, name="restore_grants"),
    # Virtualization (restores/vm_views.py): technicians and MSP admins only
    path("vms/", vm_views.vm_list, name="vm_list"),
    path("points/<int:point_pk>/vm/", vm_views.vm_start, name="vm_start"),
    path("points/<int:point_pk>/boot.png", vm_views.point_boot_screenshot, name="point_boot_png"),
    path("vms/<int:vm_pk>/", vm_views.vm_detail, name="vm_detail"),
    path("vms/<int:vm_pk>/screen.png", vm_views.vm_screen, name="vm_screen"),
    path("vms/<int:vm_pk>/stop/", vm_views.vm_stop, name="vm_stop"),
    path("vms/<int:vm_pk>/console-token/", vm_views.vm_console_token, name="vm_console_token"),
]
