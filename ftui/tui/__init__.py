"""The Textual app. Nothing here is imported by ``ftui.core``, ``ftui.service`` or ``ftui.server``."""
