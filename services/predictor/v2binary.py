"""Parsing V2 requests ourselves, so images sent with the binary data extension work.

KServe 0.21 decodes a binary-extension BYTES input by converting it to UTF-8 JSON strings, which fails (HTTP 500)
for image bytes. Here the JSON header is read and each input's binary chunk is attached untouched as the tensor's
raw data (4-byte little-endian length + bytes per element, as the extension defines), then KServe's own dataplane
runs the model and encodes the response.
"""

from __future__ import annotations

from typing import Any

import orjson
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from pydantic import ValidationError

from services.predictor.errors import InvalidInput

HEADER = "inference-header-content-length"


def _outputs(spec: Any) -> list[RequestedOutput] | None:
    if spec is None:
        return None
    if not isinstance(spec, list):
        raise InvalidInput("'outputs' must be a list")
    outputs = []
    for o in spec:
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise InvalidInput("each requested output needs a 'name'")
        params = o.get("parameters")
        outputs.append(
            RequestedOutput(name=o["name"], parameters=params if isinstance(params, dict) else None)
        )
    return outputs


def parse_binary(body: bytes, json_length: str, model_name: str) -> InferRequest:
    """A request in the binary data extension: JSON header of ``json_length`` bytes, then raw tensor chunks."""
    try:
        n = int(json_length)
    except ValueError as e:
        raise InvalidInput(f"{HEADER} must be an integer, got {json_length!r}") from e
    if not 0 < n <= len(body):
        raise InvalidInput(f"{HEADER} is {n} but the body has {len(body)} bytes")
    try:
        header = orjson.loads(body[:n])
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the request's JSON header is invalid: {e}") from e
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise InvalidInput("the request's JSON header needs an 'inputs' list")
    offset = n
    inputs = []
    for spec in header["inputs"]:
        if not isinstance(spec, dict) or not all(k in spec for k in ("name", "shape", "datatype")):
            raise InvalidInput("each input needs 'name', 'shape' and 'datatype'")
        if not isinstance(spec["shape"], list) or not all(
            isinstance(d, int) and d >= 0 for d in spec["shape"]
        ):
            raise InvalidInput(f"input {spec['name']!r} has an invalid shape {spec['shape']!r}")
        if not isinstance(spec["datatype"], str) or not isinstance(spec["name"], str):
            raise InvalidInput("an input's 'name' and 'datatype' must be strings")
        raw_params = spec.get("parameters")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        inp = InferInput(name=spec["name"], shape=spec["shape"], datatype=spec["datatype"], parameters=params)
        if "data" in spec:
            inp.data = spec["data"]
        else:
            size = params.get("binary_data_size")
            if not isinstance(size, int) or size < 0 or offset + size > len(body):
                raise InvalidInput(f"input {spec['name']!r} has a missing or wrong binary_data_size")
            inp._raw_data = body[offset : offset + size]  # kept raw: no UTF-8 round trip
            offset += size
        inputs.append(inp)
    if offset != len(body):
        raise InvalidInput(f"{len(body) - offset} bytes after the last input's binary data")
    request_params = header.get("parameters") if isinstance(header.get("parameters"), dict) else None
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=header.get("id") if isinstance(header.get("id"), str) else None,
        parameters=request_params,
        request_outputs=_outputs(header.get("outputs")),
    )


def parse_json(body: bytes, model_name: str) -> InferRequest:
    try:
        request = InferenceRequest.model_validate_json(body)
    except ValidationError as e:
        raise InvalidInput(f"invalid V2 inference request: {e.errors(include_url=False)[:3]}") from e
    return InferRequest.from_inference_request(request, model_name)
