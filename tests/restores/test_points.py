"""Recovery points as the portal keeps them."""

from restores.models import RecoveryPoint
from tests.factories import RecoveryPointFactory

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 5000


def test_point_queries_leave_the_boot_screenshot_out_until_it_is_asked_for(db):
    point = RecoveryPointFactory(boot_screenshot=PNG)
    for listed in (RecoveryPoint.objects.get(pk=point.pk), point.server.points.get()):
        assert listed.get_deferred_fields() == {"boot_screenshot"}
    assert bytes(RecoveryPoint.objects.get(pk=point.pk).boot_screenshot) == PNG
