from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """A paused enrollment remembers why it was paused, so that reactivating a
    sequence resumes the enrollments its deactivation paused (reason
    ``sequence_inactive``) and no one's own pause. A nullable column without a
    default: PostgreSQL adds it without rewriting the table."""

    dependencies = [('models', '0022_status_entered')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Enrollment',
            name='paused_reason',
            field=fields.CharField(max_length=64, null=True),
        ),
    ]
