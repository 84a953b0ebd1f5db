from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from . import health, views

app_name = "renders"


def api(path, view):
    """POST works with and without the trailing slash (no redirect)."""
    return re_path(rf"^api/{path}/?$", view.as_view(), name=view.endpoint)


urlpatterns = [
    api("trim", views.TrimView),
    api("trim/preview", views.TrimPreviewView),
    api("concatenate", views.ConcatenateView),
    api("concatenate-multipart", views.ConcatenateMultipartView),
    *(api(f"{view.endpoint}/render", view) for view in views.TEMPLATE_VIEWS),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
]
