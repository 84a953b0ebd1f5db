from django.urls import path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from renders import health
from renders.api import compose, job_views, template_views, upload_views, views

app_name = "renders"


urlpatterns = [
    *(re_path(rf"^{view.path.lstrip('/')}/?$", view.as_view(), name=view.endpoint) for view in views.RENDER_VIEWS),
    re_path(r"^api/compose/?$", compose.ComposeView.as_view(), name="compose"),
    path("api/compose/schema", compose.ComposeSchemaView.as_view(), name="compose-schema"),
    re_path(r"^api/options/?$", views.OptionsView.as_view(), name="options"),
    path("api/jobs", job_views.JobListView.as_view(), name="jobs"),
    path("api/jobs/<str:job_id>", job_views.JobView.as_view(), name="job"),
    path("api/jobs/<str:job_id>/result", job_views.JobResultView.as_view(), name="job-result"),
    path("api/templates", template_views.TemplateListView.as_view(), name="templates"),
    path("api/templates/<str:template_id>", template_views.TemplateView.as_view(), name="template"),
    path("api/templates/<str:template_id>/render", template_views.TemplateRenderView.as_view(),
         name="template-render"),
    path("api/uploads", upload_views.UploadListView.as_view(), name="uploads"),
    path("api/uploads/<str:upload_id>", upload_views.UploadView.as_view(), name="upload"),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/?$", SpectacularSwaggerView.as_view(url_name="renders:schema"), name="docs"),
    path("", RedirectView.as_view(url="/api/", permanent=False)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
]
