from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class RendersConfig(AppConfig):
    name = "renders"
    verbose_name = "Renders"

    def ready(self):
        checks.register(deprecated_settings)


def deprecated_settings(app_configs=None, **kwargs):
    """videoapi.W001: an old setting name still in use (docs/SETTINGS.md, "Renamed settings")."""
    renamed = {old: new for new, old in getattr(settings, "RENAMED", {}).items()}
    found = []
    for old, how in sorted(getattr(settings, "DEPRECATED_SETTINGS_IN_USE", {}).items()):
        if how == "ignored":
            message = f"{old} is set but ignored: {renamed[old]} is set too, and wins"
        else:
            message = f"{old} is deprecated and read for this release only: set {renamed[old]} instead"
        found.append(checks.Warning(message, hint=f"rename {old} to {renamed[old]} in the environment",
                                    id="videoapi.W001"))
    return found
