"""Reads for the off-site pages. Tenant data only through ``for_user``."""

from __future__ import annotations

from django.db.models import Count, QuerySet, Sum

from appliances.models import ACTIVE_JOB_STATES, Appliance, Job, JobKind
from offsite.models import Vault
from portal.models import Role, User


def appliances_offsite_for(user: User) -> QuerySet[Appliance]:
    """The appliances whose off-site state ``user`` may see, with that state, in one query.

    A customer user sees an appliance only through a server granted to them (as everything
    else of theirs); customer admins and MSP staff see all they may see."""
    appliances = Appliance.objects.for_user(user)
    if user.role == Role.CUSTOMER_USER:
        granted = Appliance.objects.filter(servers__restore_grants__user=user)
        appliances = appliances.filter(pk__in=granted.values("pk"))
    return appliances.select_related(
        "customer", "site", "offsite", "offsite__vault", "offsite__vault__second_vault"
    ).order_by("customer__name", "name")


def replications_for(user: User, appliance: Appliance) -> QuerySet[Job]:
    return (
        Job.objects.for_user(user)
        .filter(appliance=appliance, kind=JobKind.REPLICATE)
        .select_related("appliance", "server", "requested_by")
    )


def vaults_with_usage() -> QuerySet[Vault]:
    """Every vault with how many appliances use it and the bytes they keep there."""
    return (
        Vault.objects.select_related("second_vault")
        .annotate(
            appliance_count=Count("appliances", distinct=True),
            used_bytes=Sum("appliances__vault_bytes"),
        )
        .order_by("name")
    )


def appliance_offsite_for(user: User, appliance_pk: int) -> Appliance:
    """One appliance with its off-site state if ``user`` may see it, else Http404."""
    from django.http import Http404

    try:
        return appliances_offsite_for(user).get(pk=appliance_pk)
    except (Appliance.DoesNotExist, ValueError, TypeError):
        raise Http404("No appliance matches the given query.") from None


def running_replication(appliance: Appliance) -> Job | None:
    return (
        Job.objects.filter(appliance=appliance, kind=JobKind.REPLICATE, state__in=ACTIVE_JOB_STATES)
        .select_related("appliance")
        .first()
    )
