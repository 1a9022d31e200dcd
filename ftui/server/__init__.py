"""ftui's local OpenAI-compatible fine-tuning backend (``ftui serve``). Needs the ``local`` extra."""
