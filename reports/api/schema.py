"""OpenAPI additions: the token scheme, and the snapshot payload schema from the msgspec structs.

drf-spectacular describes the DRF views; the upload body is validated by
``reports.payload`` (msgspec), not by a serializer, so its JSON Schema is
generated from those same structs here and put into the document. The docs,
the schema and the validator therefore cannot drift apart.
"""

from __future__ import annotations

import msgspec
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from reports import payload as payload_schema

_REF = "#/components/schemas/"


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "reports.auth.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token rlv_a_...` (agent: /upload only) or `Token rlv_u_...` (reader: everything else).",
        }


def _component_name(name: str) -> str:
    # msgspec names components after the structs; "Host" and "User" would clash
    # with the read API's serializers, so all but the root get a prefix.
    return name if name == "SnapshotPayload" else f"Payload{name}"


def _rename_refs(node):
    if isinstance(node, dict):
        return {key: (_REF + _component_name(value[len(_REF):]) if key == "$ref" and isinstance(value, str)
                      else _rename_refs(value)) for key, value in node.items()}
    if isinstance(node, list):
        return [_rename_refs(item) for item in node]
    return node


def _titled(name: str, schema: dict) -> dict:
    """*schema* titled with its component name.

    msgspec titles each component after its struct ("Process"), and Swagger UI
    lists a component by its title, so the payload's Process and the read
    API's Process serializer showed as two "Process" entries.
    """
    return {**schema, "title": name}


def payload_components() -> dict[str, dict]:
    """JSON Schema components for SnapshotPayload and the stored document (payload + server fields)."""
    _, components = msgspec.json.schema_components([payload_schema.SnapshotPayload], ref_template=_REF + "{name}")
    schemas = {_component_name(name): _titled(_component_name(name), _rename_refs(schema))
               for name, schema in components.items()}
    schemas["StoredSnapshot"] = {
        "description": "A snapshot as stored in its day file: the validated payload plus what the server added.",
        "allOf": [
            {"$ref": _REF + "SnapshotPayload"},
            {
                "type": "object",
                "properties": {
                    "received_at": {"type": "string", "format": "date-time"},
                    "ip": {"type": "string", "description": "The address the upload came from."},
                },
                "required": ["received_at", "ip"],
            },
        ],
    }
    return schemas


def add_payload_schema(result, generator, request, public):
    """drf-spectacular postprocessing hook: payload components and the /upload request body."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(payload_components())
    upload = result.get("paths", {}).get("/upload", {}).get("post")
    if upload is not None:
        upload["requestBody"] = {
            "required": True,
            "description": "One schema-v1 snapshot (docs/payload.md).",
            "content": {"application/json": {"schema": {"$ref": _REF + "SnapshotPayload"}}},
        }
    return result
