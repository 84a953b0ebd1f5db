# Webhooks (renders.webhooks): each API key's signing secret and the delivery records.

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import renders.models


class Migration(migrations.Migration):

    dependencies = [
        ('renders', '0006_jobs'),
    ]

    operations = [
        # Keys made before webhooks get no secret (a default is computed once for every existing row:
        # they would all share it); they sign with VIDEOAPI_WEBHOOK_SECRET until rotated. New keys get their own.
        migrations.AddField(
            model_name='clientkey',
            name='webhook_secret',
            field=models.CharField(blank=True, default='', editable=False, max_length=100,
                                   help_text='whsec_...: signs this key\'s webhooks; shown once'),
        ),
        migrations.AlterField(
            model_name='clientkey',
            name='webhook_secret',
            field=models.CharField(blank=True, default=renders.models.new_webhook_secret, editable=False,
                                   max_length=100, help_text='whsec_...: signs this key\'s webhooks; shown once'),
        ),
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('webhook_id', models.CharField(db_index=True, help_text='the webhook-id header: one per message', max_length=64)),
                ('event', models.CharField(help_text='render.succeeded, render.failed or render.cancelled', max_length=40)),
                ('url', models.CharField(max_length=2048)),
                ('payload', models.JSONField(help_text='the body: type, timestamp, data')),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('gone', 'Gone')], db_index=True, default='pending', max_length=16)),
                ('attempts', models.JSONField(blank=True, default=list, help_text='each attempt: at, status_code or error, seconds')),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('client_key', models.ForeignKey(blank=True, help_text='whose webhook secret signs it (none: VIDEOAPI_WEBHOOK_SECRET)', null=True, on_delete=django.db.models.deletion.SET_NULL, to='renders.clientkey')),
                ('render', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='webhook_deliveries', to='renders.renderlog')),
            ],
            options={
                'verbose_name_plural': 'webhook deliveries',
                'ordering': ['-created_at'],
            },
        ),
    ]
