"""The job code was split by layer (the job task now lives in renders.lifecycle.worker): tasks queued before the
upgrade point at the new path; a downloaded result's expiry is the moment it was downloaded (what the API shows)."""

from django.db import migrations
from django.db.models import F

OLD, NEW = "renders.lifecycle.tasks.render_job", "renders.lifecycle.worker.render_job"


def forwards(apps, schema_editor):
    apps.get_model("django_tasks_database", "DBTaskResult").objects.filter(task_path=OLD).update(task_path=NEW)
    apps.get_model("renders", "RenderLog").objects.filter(result_downloaded_at__isnull=False).update(
        result_expires_at=F("result_downloaded_at"))


def backwards(apps, schema_editor):
    apps.get_model("django_tasks_database", "DBTaskResult").objects.filter(task_path=NEW).update(task_path=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("renders", "0009_job_hosts"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
