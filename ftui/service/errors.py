"""Every failure the SDK can raise, explained for a person: ``explain(exc) -> Problem``.

The TUI never shows a traceback for these: a Problem has a kind the UI acts on (offline → mark and retry with
backoff; rate_limited → wait ``retry_after``; auth → say the key was rejected), and a message that names the cause.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FtuiError

WIND_DOWN = ("OpenAI is winding down self-serve fine-tuning: since 2026-05-07 organisations that never fine-tuned "
             "cannot create jobs, since 2026-07-02 those without recent fine-tuned inference cannot, and from "
             "2027-01-06 no one can. Existing fine-tuned models keep serving until their base model shuts down. "
             "Use the local backend (`ftui serve`) or an Azure OpenAI / compatible profile to train.")


@dataclass
class Problem:
    kind: str  # offline | timeout | auth | forbidden | rate_limited | server | bad_request | not_found | stream |
    #            bad_response (an answer that is not what the API returns: HTML from a proxy, broken JSON, …)
    message: str
    status: int | None = None
    retry_after: float | None = None
    code: str | None = None
    param: str | None = None

    @property
    def transient(self) -> bool:
        """Worth retrying by itself (the poller keeps going, with backoff)."""
        return self.kind in ("offline", "timeout", "rate_limited", "server", "bad_response")

    def __str__(self) -> str:
        return self.message


class ServiceError(FtuiError):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _retry_after(headers) -> float | None:
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        import time
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _body_message(exc) -> tuple[str, str | None, str | None]:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        err = inner if isinstance(inner, dict) else body
        msg = err.get("message") if isinstance(err.get("message"), str) else None
        return msg or str(getattr(exc, "message", exc)), err.get("code"), err.get("param")
    return str(getattr(exc, "message", None) or exc), None, None


def explain(exc: BaseException, *, action: str = "", openai_host: bool = False) -> Problem:
    """A Problem for any exception from a call; ``action`` ("create job", …) refines the advice."""
    if isinstance(exc, ServiceError):
        return exc.problem
    import openai  # the caller already loaded it

    if isinstance(exc, openai.APITimeoutError):
        return Problem("timeout", "The backend did not answer in time; retrying.")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        why = f" ({type(cause).__name__})" if cause else ""
        return Problem("offline", f"Cannot reach the backend{why}; retrying.")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        msg, code, param = _body_message(exc)
        if status == 401:
            return Problem("auth", f"The backend rejected the API key (401): {msg} Check the key in the "
                           "environment variable the profile names.", status, code=code)
        if status == 403:
            text = f"Not allowed (403): {msg}"
            if action == "create job" and openai_host:
                text += " " + WIND_DOWN
            return Problem("forbidden", text, status, code=code)
        if status == 429:
            after = _retry_after(exc.response.headers)
            wait = f" Waiting {after:.0f} s as the backend asks (Retry-After)." if after is not None else ""
            quota = " Your quota is used up: check billing." if code == "insufficient_quota" else ""
            return Problem("rate_limited", f"Rate limited (429): {msg}.{wait}{quota}", status,
                           retry_after=after, code=code)
        if status == 404:
            return Problem("not_found", f"Not found (404): {msg}", status, code=code, param=param)
        if status >= 500:
            return Problem("server", f"The backend failed ({status}): {msg}; retrying.", status, code=code)
        where = f" [{param}]" if param else ""
        return Problem("bad_request", f"Refused ({status}){where}: {msg}", status, code=code, param=param)
    if isinstance(exc, openai.APIError):  # no status: an error event in the middle of a stream
        msg, code, _ = _body_message(exc)
        return Problem("stream", f"The stream broke: {msg}", code=code)
    if isinstance(exc, OSError):
        return Problem("offline", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):  # a body the SDK could not read
        what = f" to {action}" if action else ""
        return Problem("bad_response", f"The backend's answer{what} is not an API response ({type(exc).__name__}: "
                       f"{_short(exc)}). Is the base URL right (a proxy or web page answering)? Retrying.")
    return Problem("bug", f"{type(exc).__name__}: {exc}")


def bad_response(action: str, why: str) -> ServiceError:
    return ServiceError(Problem("bad_response", f"The backend's answer to {action} {why}; retrying."))


def _short(exc: BaseException, n: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= n else text[:n] + "…"
