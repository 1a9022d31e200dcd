"""Extract the OpenAPI component schemas the server tests check against (with everything they reference) from
../shared/openapi/openai-openapi.yaml into tests/data/openapi_schemas.json, so the tests need no 3 MB spec."""
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WANT = ["FineTuningJob", "FineTuningJobEvent", "FineTuningJobCheckpoint", "OpenAIFile", "Model",
        "CreateChatCompletionResponse", "CreateChatCompletionStreamResponse", "ErrorResponse", "DeleteModelResponse",
        "DeleteFileResponse", "ListFineTuningJobEventsResponse", "ListPaginatedFineTuningJobsResponse",
        "ListFineTuningJobCheckpointsResponse", "ListFilesResponse", "ListModelsResponse", "Upload", "UploadPart"]
spec_path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "openapi" / "openai-openapi.yaml"
spec = yaml.load(spec_path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
schemas = spec["components"]["schemas"]
out, todo = {}, list(WANT)
while todo:
    name = todo.pop()
    if name in out:
        continue
    out[name] = schemas[name]
    text = json.dumps(schemas[name])
    for ref in set(part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]):
        todo.append(ref)
(ROOT / "tests" / "data" / "openapi_schemas.json").write_text(json.dumps(out, indent=1, sort_keys=True))
print(f"{len(out)} schemas written")
