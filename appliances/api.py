from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import mixins, serializers
from rest_framework.exceptions import ValidationError

from appliances import services
from appliances.confinement import validate_volume_source
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
    volumes = serializers.DictField(
        child=serializers.RegexField(r"^/[^\0]*$", validators=[validate_volume_source]),
        write_only=True,
        required=False,
        help_text="volume name -> block device or image path on the appliance",
    )

    class Meta:
        model = ProtectedServer
        fields = ["id", "appliance", "name", "hostname", "os", "is_active", "volumes"]
        read_only_fields = ["is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["appliance"].queryset = Appliance.objects.for_user(request.user)


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


class ServerViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, TenantScopedViewSet
):
    serializer_class = ServerSerializer
    base_queryset = ProtectedServer.objects.all()

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        appliance = data.pop("appliance")
        try:
            serializer.instance = services.add_server(
                appliance, actor=self.request.user, request=self.request, **data
            )
        except DjangoValidationError as exc:
            raise ValidationError({"non_field_errors": exc.messages}) from None


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    serializer_class = JobSerializer
    base_queryset = Job.objects.all()


router.register("appliances", ApplianceViewSet, basename="api-appliance")
router.register("servers", ServerViewSet, basename="api-server")
router.register("jobs", JobViewSet, basename="api-job")
