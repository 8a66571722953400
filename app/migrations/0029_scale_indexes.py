from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Reads that cost the same however big the organization, or the one before it,
    grows (issue 24): each per-prospect list a page reads through a DataLoader
    (enrollments, activities, status history, tasks) and each enrollment's stage
    changes and messages by their parent's id; and each page of an organization's
    rows in id order (prospects, tasks, enrollments, suppressions) by
    (organization_id, id), so that an organization created after a big one reads
    its own rows only, under a generic plan too. Building them on PostgreSQL locks
    the tables against writes for the time it takes (about a second per 100,000 rows)."""

    dependencies = [('models', '0028_mailbox_identity')]

    initial = False

    operations = [
        ops.AddIndex(model_name='Enrollment', index=Index(fields=['prospect_id'])),
        ops.AddIndex(model_name='Enrollment', index=Index(fields=['organization_id', 'id'])),
        ops.AddIndex(model_name='Activity', index=Index(fields=['prospect_id'])),
        ops.AddIndex(model_name='StatusChange', index=Index(fields=['prospect_id'])),
        ops.AddIndex(model_name='Task', index=Index(fields=['prospect_id'])),
        ops.AddIndex(model_name='Task', index=Index(fields=['organization_id', 'id'])),
        ops.AddIndex(model_name='StageChange', index=Index(fields=['enrollment_id'])),
        ops.AddIndex(model_name='Message', index=Index(fields=['enrollment_id'])),
        ops.AddIndex(model_name='Prospect', index=Index(fields=['organization_id', 'id'])),
        ops.AddIndex(model_name='Suppression', index=Index(fields=['organization_id', 'id'])),
    ]
