from django.urls import path

from statusapi import views

urlpatterns = [
    path("", views.apikey_list, name="apikey_list"),
    path("<int:key_pk>/revoke/", views.apikey_revoke, name="apikey_revoke"),
]
