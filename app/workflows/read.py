"""What a viewer may read of the configuration: any member reads its organization's
workflows, statuses, categories, actions and rules. Deleted workflows and statuses
(kept so that history names them) are read only through the rows that name them."""

from __future__ import annotations

from tortoise.queryset import QuerySet

from app.accounts.read import of_organization
from app.workflows.models import Action, ActionCategory, AutomationRule, Status, Workflow


def workflows(organization_id: int | None) -> QuerySet[Workflow]:
    return of_organization(Workflow, organization_id).filter(deleted_at=None)


def statuses(organization_id: int | None) -> QuerySet[Status]:
    return of_organization(Status, organization_id).filter(deleted_at=None)


def categories(organization_id: int | None) -> QuerySet[ActionCategory]:
    return of_organization(ActionCategory, organization_id)


def actions(organization_id: int | None) -> QuerySet[Action]:
    return of_organization(Action, organization_id)


def rules(organization_id: int | None) -> QuerySet[AutomationRule]:
    return of_organization(AutomationRule, organization_id)


async def workflow_of(status_id: int) -> int | None:
    """The workflow a status is in (statuses never move between workflows); None for no status."""
    found: int | None = await Status.filter(id=status_id).first().values_list("workflow_id", flat=True)  # type: ignore[assignment]
    return found
