from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cem", "0007_suppression"),
    ]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="require_admin_two_factor",
            field=models.BooleanField(
                default=False, verbose_name="Require two-factor authentication for administrators"
            ),
        ),
    ]
