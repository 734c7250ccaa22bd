from rest_framework import mixins, serializers

from appliances.models import Appliance, Job, ProtectedServer
from portal.api import TenantScopedViewSet, router


class ApplianceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Appliance
        fields = [
            "id",
            "serial",
            "name",
            "model",
            "customer",
            "site",
            "state",
            "capacity_bytes",
            "used_bytes",
            "purchased_on",
            "warranty_end",
            "last_seen_at",
            "agent_version",
        ]


class ServerSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProtectedServer
        fields = ["id", "appliance", "name", "hostname", "os", "is_active"]


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id",
            "appliance",
            "server",
            "kind",
            "state",
            "bytes_done",
            "bytes_total",
            "percent",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]


class ApplianceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    serializer_class = ApplianceSerializer
    base_queryset = Appliance.objects.select_related("customer", "site")


class ServerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    serializer_class = ServerSerializer
    base_queryset = ProtectedServer.objects.all()


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    serializer_class = JobSerializer
    base_queryset = Job.objects.all()


router.register("appliances", ApplianceViewSet, basename="api-appliance")
router.register("servers", ServerViewSet, basename="api-server")
router.register("jobs", JobViewSet, basename="api-job")
