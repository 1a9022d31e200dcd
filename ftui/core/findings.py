"""Findings: every problem the validator reports, with its code, severity, line and JSON path."""

from __future__ import annotations

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"

# code -> (severity, one-line description). The first seven are the OpenAI cookbook's categories, under its codes.
CODES: dict[str, tuple[str, str]] = {
    "data_type": (ERROR, "a line (or message) is not a JSON object"),
    "missing_messages_list": (ERROR, "no non-empty `messages` list"),
    "message_missing_key": (ERROR, "a message lacks `role`, `content` or another required key"),
    "message_unrecognized_key": (ERROR, "a message has a key the fine-tuning format does not know"),
    "unrecognized_role": (ERROR, "a message role other than system, user, assistant, tool or function"),
    "missing_content": (ERROR, "a message has empty or non-text content"),
    "example_missing_assistant_message": (ERROR, "a chat example has no assistant message to train on"),
    # reading
    "invalid_json": (ERROR, "the line is not valid JSON"),
    "invalid_utf8": (ERROR, "the line is not valid UTF-8"),
    "json_not_jsonl": (ERROR, "the file is JSON (an array or pretty-printed objects), not JSON Lines"),
    "empty_file": (ERROR, "the file holds no examples"),
    "too_few_examples": (ERROR, "fewer than 10 examples (the service's minimum)"),
    "mixed_format": (ERROR, "the line's format differs from the file's"),
    # what the service enforces
    "invalid_weight": (ERROR, "`weight` must be 0 or 1"),
    "weight_not_on_assistant": (ERROR, "`weight` is only allowed on assistant messages"),
    "invalid_content_part": (ERROR, "a content part is not a valid text or image_url part"),
    "image_not_in_user_message": (ERROR, "images are only allowed in user messages"),
    "too_many_images": (ERROR, "more than 10 images in one example"),
    "images_not_supported": (ERROR, "this format takes text only"),
    "invalid_tool_calls": (ERROR, "`tool_calls` is not a list of function calls"),
    "invalid_tools": (ERROR, "`tools` is not a list of valid function definitions"),
    "special_token": (ERROR, "text contains a special-token string that the service rejects"),
    "preference_shape": (ERROR, "a preference (DPO) example is not one-turn with one assistant answer per output"),
    "invalid_completion": (ERROR, "`prompt` and `completion` must be strings"),
    # warnings
    "blank_line": (WARNING, "an empty line (skipped, not counted as an example)"),
    "utf8_bom": (WARNING, "the file starts with a UTF-8 byte-order mark"),
    "duplicate_example": (WARNING, "the same example appears on another line"),
    "missing_system_message": (WARNING, "no system message"),
    "missing_user_message": (WARNING, "no user message"),
    "blank_assistant_content": (WARNING, "an assistant message is only whitespace"),
    "too_long": (WARNING, "over the model's training context: the example will be truncated"),
    "unrecognized_key": (WARNING, "a top-level key the format does not use"),
    "developer_role": (WARNING, "`developer` messages are not in the fine-tuning schema"),
    "no_trainable_tokens": (WARNING, "every assistant message has weight 0: nothing to train on"),
    "invalid_tool_arguments": (WARNING, "tool-call `arguments` is not valid JSON"),
    "tool_arguments_not_object": (WARNING, "tool-call `arguments` is JSON but not an object (double-encoded?)"),
    "duplicate_across_files": (WARNING, "the same example is in an earlier file (train ↔ validation leakage)"),
}


@dataclass(frozen=True, slots=True)
class Finding:
    line: int | None  # 1-based physical line; None for the whole file
    code: str
    message: str
    path: str = ""  # JSON path inside the line, e.g. "messages[2].role"

    @property
    def severity(self) -> str:
        return CODES[self.code][0]

    def to_dict(self) -> dict:
        return {"line": self.line, "code": self.code, "severity": self.severity, "message": self.message,
                "path": self.path}

    def shifted(self, lines: int) -> "Finding":
        return self if self.line is None or not lines else Finding(self.line + lines, self.code, self.message,
                                                                   self.path)


def file_first(f: Finding) -> int:
    """Sort key: file-level findings (no line) first, then by line."""
    return -1 if f.line is None else f.line
