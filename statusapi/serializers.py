"""What the Status API answers: flat rows an integration can map to its own tickets."""

from __future__ import annotations

from rest_framework import serializers

from appliances.models import Alert
from monitoring.models import ProtectionState, ServerStatus


class StateCountsSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=ProtectionState.choices)
    label = serializers.CharField()
    servers = serializers.IntegerField()


class FleetSerializer(serializers.Serializer):
    servers = serializers.IntegerField(help_text="servers in scope")
    by_state = StateCountsSerializer(many=True, help_text="worst first")
    retention_short = serializers.IntegerField(
        help_text="servers whose points do not keep their retention policy's promise"
    )


class ServerStatusSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="server_id", read_only=True)
    name = serializers.CharField(source="server.name", read_only=True)
    hostname = serializers.CharField(source="server.hostname", read_only=True)
    appliance_id = serializers.IntegerField(source="server.appliance_id", read_only=True)
    appliance = serializers.CharField(source="server.appliance.name", read_only=True)
    customer_id = serializers.IntegerField(source="server.appliance.customer_id", read_only=True)
    customer = serializers.CharField(source="server.appliance.customer.name", read_only=True)
    retention = serializers.SerializerMethodField()

    class Meta:
        model = ServerStatus
        fields = [
            "id", "name", "hostname", "appliance_id", "appliance", "customer_id", "customer",
            "state", "reason", "since", "last_point_at", "last_good_point_at",
            "offsite_point_at", "retention", "retention_summary", "retention_since",
        ]  # fmt: skip
        read_only_fields = fields

    def get_retention(self, status: ServerStatus) -> str:
        """compliant, short (fewer points than promised) or unknown (not evaluated yet)."""
        if status.retention_ok is None:
            return "unknown"
        return "compliant" if status.retention_ok else "short"


class AlertSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.name", read_only=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id", "kind", "severity", "message", "state", "customer_id", "customer",
            "appliance_id", "server_id", "created_at", "acknowledged_at", "escalated_at",
            "resolved_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_state(self, alert: Alert) -> str:
        """open, acknowledged or resolved."""
        if alert.resolved_at is not None:
            return "resolved"
        return "acknowledged" if alert.acknowledged_at is not None else "open"
