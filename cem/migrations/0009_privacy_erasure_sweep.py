from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cem", "0008_organization_require_admin_two_factor"),
    ]

    operations = [
        migrations.AddField(
            model_name="privacyrequest",
            name="sweep_identifiers",
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
        # varchar(8) -> varchar(12): a catalogue change in PostgreSQL, no table rewrite.
        migrations.AlterField(
            model_name="privacyrequest",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("redacting", "Erased — redacting free text"),
                    ("done", "Completed"),
                    ("failed", "Failed"),
                    ("expired", "File deleted (retention)"),
                ],
                default="queued",
                max_length=12,
            ),
        ),
    ]
