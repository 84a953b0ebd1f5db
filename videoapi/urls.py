from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("renders.urls")),
]

handler404 = "renders.api.views.not_found"  # the JSON error envelope, not Django's HTML page
