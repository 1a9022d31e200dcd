"""Talking to an OpenAI-compatible fine-tuning backend through the official ``openai`` SDK (AsyncOpenAI).

- ``profiles``: which backend (OpenAI from the environment, Azure OpenAI or any compatible URL from the config file,
  or the local ``ftui serve``); never renders a key.
- ``local``: starts, reuses and stops the local backend process.
- ``errors``: every SDK exception becomes a ``Problem`` a person can read (offline, 401, 403/wind-down, 429 with
  Retry-After, 5xx, timeouts, a broken stream).
- ``client``: ``Service``, the async calls the app makes (files, jobs, events, checkpoints, models, chat streams).
- ``jobs``: ``JobTrack``, the per-job state a live view needs (event cursor, de-duplication, metric series).
- ``results``: the results CSV (plain or base64).

Never imports textual; ``openai`` is imported only by ``client`` (the TUI loads it after its first paint).
"""
