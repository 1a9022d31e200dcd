"""Requests generated from OpenAI's own OpenAPI spec (../shared/openapi, the operations the local backend
implements) never get a 500, and every 200 conforms to the spec's response schema. Bounded: a few dozen examples
per operation. Spec quirks ignored, by name:

- `OpenAIFile.purpose` lists no `evals`, while `CreateFileRequest.purpose` accepts it: an `evals` upload is echoed
  back as OpenAI does, and the response check skips that one value.

Not yet run (they fail today, see the server-hardening issue): `status_code_conformance` (the spec documents only
200 for these operations, so every 400/404 is "undefined") and `negative_data_rejection`.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

SPEC = Path(__file__).resolve().parents[3] / "shared" / "openapi" / "openai-openapi.yaml"
IMPLEMENTED = ["createChatCompletion", "listFiles", "createFile", "deleteFile", "retrieveFile", "downloadFile",
               "createFineTuningJob", "listPaginatedFineTuningJobs", "retrieveFineTuningJob", "cancelFineTuningJob",
               "listFineTuningJobCheckpoints", "listFineTuningEvents", "pauseFineTuningJob", "resumeFineTuningJob",
               "listModels", "retrieveModel", "deleteModel"]

schema = schemathesis.openapi.from_path(str(SPEC)).include(operation_id=IMPLEMENTED)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests(case, server):
    response = case.call(base_url=server.base_url, headers=server._auth() or {"Authorization": "Bearer x"},
                         timeout=60)
    checks = [not_a_server_error]
    try:
        body = response.json()
    except ValueError:  # file content, an SSE stream
        body = None
    if not (isinstance(body, dict) and body.get("purpose") == "evals"):
        checks.append(response_schema_conformance)
    case.validate_response(response, checks=checks)
