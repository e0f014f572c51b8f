"""The alerts read API: the rules (``/api/alerts/rules/``) and what fired (``/api/alerts/``).

Read-only, like the rest of the read API: rules are written in the admin.
A destination's secret is never shown.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers

from reports.alerts import selectors
from reports.api.views import ReadAPIMixin, _errors
from reports.models import AlertDelivery, AlertDestination, AlertRule


ID_MAX = 2**63 - 1  # a database id: larger is a 400, not an overflow in the query


class AlertDestinationSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertDestination
        fields = ["id", "name", "kind", "url", "slack"]


class AlertRuleSerializer(serializers.ModelSerializer):
    destinations = AlertDestinationSerializer(many=True, read_only=True)

    class Meta:
        model = AlertRule
        fields = ["id", "name", "active", "kind", "pattern", "threshold_percent", "allowed_ports", "os_name",
                  "os_version", "hostname_pattern", "group_seconds", "destinations"]


class AlertDeliverySerializer(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule.name")
    destination = serializers.CharField(source="destination.name")

    class Meta:
        model = AlertDelivery
        fields = ["id", "created_at", "rule", "destination", "host", "host_name", "kind", "subject", "before",
                  "after", "key", "state", "attempts", "next_attempt_at", "delivered_at", "last_error"]


class AlertFilterSerializer(serializers.Serializer):
    """The query string of ``/api/alerts/``."""

    state = serializers.ChoiceField(choices=[AlertDelivery.PENDING, AlertDelivery.DELIVERED, AlertDelivery.FAILED],
                                    required=False)
    host = serializers.IntegerField(min_value=1, max_value=ID_MAX, required=False, help_text="A host's id.")
    rule = serializers.IntegerField(min_value=1, max_value=ID_MAX, required=False, help_text="A rule's id.")


@extend_schema(summary="The alert rules and their destinations", tags=["read"],
               responses={200: AlertRuleSerializer(many=True), **_errors(400, 401, 403, 404, 429)})
class AlertRuleListView(ReadAPIMixin, generics.ListAPIView):
    serializer_class = AlertRuleSerializer

    def get_queryset(self):
        return selectors.alert_rule_list()


@extend_schema(summary="Alerts that fired, newest first (?state=, ?host=, ?rule=)", parameters=[AlertFilterSerializer],
               tags=["read"], responses={200: AlertDeliverySerializer(many=True), **_errors(400, 401, 403, 404, 429)})
class AlertListView(ReadAPIMixin, generics.ListAPIView):
    serializer_class = AlertDeliverySerializer

    def get_queryset(self):
        params = AlertFilterSerializer(data=self.request.query_params.dict())
        params.is_valid(raise_exception=True)
        return selectors.alert_recent(**params.validated_data)
