"""The Status API key in the OpenAPI schema: an HTTP bearer scheme."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "statusapi.authentication.ApiKeyAuthentication"
    name = "statusApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A Status API key an MSP admin issued (Status API keys page).",
        }
