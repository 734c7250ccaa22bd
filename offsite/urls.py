from django.urls import path

from offsite import views

urlpatterns = [
    path("", views.offsite_home, name="offsite_home"),
    path("vaults/", views.vault_list, name="vault_list"),
    path("vaults/new/", views.vault_create, name="vault_create"),
    path("vaults/<int:vault_pk>/", views.vault_edit, name="vault_edit"),
    path("appliances/<int:appliance_pk>/", views.appliance_offsite, name="appliance_offsite"),
    path(
        "appliances/<int:appliance_pk>/state/",
        views.appliance_offsite_state,
        name="appliance_offsite_state",
    ),
    path(
        "appliances/<int:appliance_pk>/replicate/",
        views.appliance_replicate,
        name="appliance_replicate",
    ),
    path(
        "appliances/<int:appliance_pk>/refresh/",
        views.appliance_offsite_refresh,
        name="appliance_offsite_refresh",
    ),
    path(
        "servers/<int:server_pk>/retention/",
        views.server_offsite_retention,
        name="server_offsite_retention",
    ),
]
