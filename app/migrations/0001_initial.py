import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from app.accounts.models import Role
from app.prospects.models import ChangeCause, TaskKind
from app.workflows.models import SystemStatus, TriggerEvent


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="Organization",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("name", fields.CharField(max_length=200)),
                ("time_zone", fields.CharField(default="UTC", max_length=64)),
                ("phone_region", fields.CharField(default="US", max_length=2)),
                ("default_status_id", fields.IntField(null=True)),
                ("pull_from_other_agents", fields.BooleanField(default=False)),
                ("email_from", fields.CharField(null=True, max_length=320)),
                ("sms_from", fields.CharField(null=True, max_length=32)),
                ("postal_address", fields.TextField(null=True, unique=False)),
                ("round_robin_user_id", fields.IntField(null=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={"table": "organization", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ActionCategory",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "organization",
                    fields.ForeignKeyField(
                        "models.Organization",
                        source_field="organization_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=200)),
            ],
            options={"table": "action_category", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Action",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "organization",
                    fields.ForeignKeyField(
                        "models.Organization",
                        source_field="organization_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=200)),
                (
                    "category",
                    fields.ForeignKeyField(
                        "models.ActionCategory",
                        source_field="category_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "interactions",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                (
                    "operations",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("position", fields.IntField(default=0)),
            ],
            options={
                "table": "action",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A disposition. ``operations`` is a list of operation dicts",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="User",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "organization",
                    fields.ForeignKeyField(
                        "models.Organization",
                        source_field="organization_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=200)),
                ("email", fields.CharField(max_length=320)),
                (
                    "role",
                    fields.CharEnumField(
                        description="ADMIN: ADMIN\nMANAGER: MANAGER\nAGENT: AGENT", enum_type=Role, max_length=16
                    ),
                ),
                ("active", fields.BooleanField(default=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "user",
                "app": "models",
                "unique_together": (("organization", "email"),),
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ApiToken",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "organization",
                    fields.ForeignKeyField(
                        "models.Organization",
                        source_field="organization_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "user",
                    fields.ForeignKeyField(
                        "models.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=200)),
                ("token_hash", fields.CharField(unique=True, max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("last_used_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("revoked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={"table": "api_token", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Workflow",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "organization",
                    fields.ForeignKeyField(
                        "models.Organization",
                        source_field="organization_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=200)),
                ("position", fields.IntField()),
                ("deleted_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "workflow",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A bucket of statuses. Deleting one only marks it deleted (``deleted_at``),",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Status",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "organization",
                    fields.ForeignKeyField(
                        "models.Organization",
                        source_field="organization_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "workflow",
                    fields.ForeignKeyField(
                        "models.Workflow",
                        source_field="workflow_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=200)),
                ("position", fields.IntField()),
                (
                    "system_status",
                    fields.CharEnumField(
                        description="NEW: NEW\nATTEMPTING_CONTACT: ATTEMPTING_CONTACT\nCONTACTED: CONTACTED\nIN_PROGRESS: IN_PROGRESS\nWON: WON\nLOST: LOST\nUNREACHABLE: UNREACHABLE\nDO_NOT_CONTACT: DO_NOT_CONTACT",
                        enum_type=SystemStatus,
                        max_length=32,
                    ),
                ),
                ("pipeline_percent", fields.IntField(default=0)),
                ("max_assignment_seconds", fields.IntField(null=True)),
                ("deleted_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={"table": "status", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ActionAvailability",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "action",
                    fields.ForeignKeyField(
                        "models.Action",
                        source_field="action_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "status",
                    fields.ForeignKeyField(
                        "models.Status",
                        source_field="status_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
            ],
            options={
                "table": "action_availability",
                "app": "models",
                "unique_together": (("action", "status"),),
                "pk_attr": "id",
                "table_description": "The statuses an action is limited to. An action with none is available everywhere.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="AutomationRule",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "organization",
                    fields.ForeignKeyField(
                        "models.Organization",
                        source_field="organization_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=200)),
                ("enabled", fields.BooleanField(default=True)),
                (
                    "event",
                    fields.CharEnumField(
                        description="PROSPECT_CREATED: PROSPECT_CREATED\nSTATUS_ENTERED: STATUS_ENTERED",
                        enum_type=TriggerEvent,
                        max_length=32,
                    ),
                ),
                (
                    "status",
                    fields.ForeignKeyField(
                        "models.Status",
                        source_field="status_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "operations",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
            ],
            options={"table": "automation_rule", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Prospect",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "organization",
                    fields.ForeignKeyField(
                        "models.Organization",
                        source_field="organization_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("first_name", fields.CharField(null=True, max_length=200)),
                ("last_name", fields.CharField(null=True, max_length=200)),
                ("email", fields.CharField(null=True, max_length=320)),
                ("phone", fields.CharField(null=True, max_length=32)),
                ("company", fields.CharField(null=True, max_length=200)),
                ("title", fields.CharField(null=True, max_length=200)),
                ("time_zone", fields.CharField(null=True, max_length=64)),
                (
                    "custom_fields",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("search_text", fields.TextField(default="", unique=False)),
                (
                    "status",
                    fields.ForeignKeyField(
                        "models.Status",
                        source_field="status_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "owner",
                    fields.ForeignKeyField(
                        "models.User",
                        source_field="owner_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("assigned_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("do_not_contact", fields.BooleanField(default=False)),
                (
                    "opted_out_channels",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("unsubscribed_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("contact_attempts", fields.IntField(default=0)),
                ("last_contact_attempt_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("contact_made_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "prospect",
                "app": "models",
                "indexes": [Index(fields=["organization", "status"]), Index(fields=["organization", "owner"])],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Activity",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "organization",
                    fields.ForeignKeyField(
                        "models.Organization",
                        source_field="organization_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "prospect",
                    fields.ForeignKeyField(
                        "models.Prospect",
                        source_field="prospect_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "action",
                    fields.ForeignKeyField(
                        "models.Action",
                        source_field="action_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("interaction", fields.CharField(max_length=16)),
                ("note", fields.TextField(null=True, unique=False)),
                (
                    "actor",
                    fields.ForeignKeyField(
                        "models.User",
                        source_field="actor_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={"table": "activity", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="StatusChange",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "organization",
                    fields.ForeignKeyField(
                        "models.Organization",
                        source_field="organization_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "prospect",
                    fields.ForeignKeyField(
                        "models.Prospect",
                        source_field="prospect_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "from_status",
                    fields.ForeignKeyField(
                        "models.Status",
                        source_field="from_status_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "to_status",
                    fields.ForeignKeyField(
                        "models.Status",
                        source_field="to_status_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "cause",
                    fields.CharEnumField(
                        description="USER: USER\nACTION: ACTION\nAUTOMATION: AUTOMATION",
                        enum_type=ChangeCause,
                        max_length=16,
                    ),
                ),
                (
                    "actor",
                    fields.ForeignKeyField(
                        "models.User",
                        source_field="actor_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("note", fields.TextField(null=True, unique=False)),
                ("at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={"table": "status_change", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Task",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "organization",
                    fields.ForeignKeyField(
                        "models.Organization",
                        source_field="organization_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "prospect",
                    fields.ForeignKeyField(
                        "models.Prospect",
                        source_field="prospect_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "assignee",
                    fields.ForeignKeyField(
                        "models.User",
                        source_field="assignee_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "kind",
                    fields.CharEnumField(
                        description="CALL: CALL\nCALLBACK: CALLBACK\nTODO: TODO", enum_type=TaskKind, max_length=16
                    ),
                ),
                ("due_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("completed_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("note", fields.TextField(null=True, unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "task",
                "app": "models",
                "indexes": [Index(fields=["organization", "due_at"])],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
    ]
