from django.db import migrations, models


def mark_staff_events(apps, schema_editor):
    # Events written before the flag: the actor, when still there, says whether it was staff.
    AuditEvent = apps.get_model("portal", "AuditEvent")
    AuditEvent.objects.filter(actor__role__in=["msp_admin", "technician"]).update(
        actor_is_msp=True
    )


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_customer_require_mfa"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="actor_is_msp",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_staff_events, migrations.RunPython.noop),
    ]
