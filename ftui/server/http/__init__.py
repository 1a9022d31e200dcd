"""The HTTP side of the local backend: the FastAPI app, its guards (host, origin, auth, sizes), the Azure shape,
the multipart reader and one router per resource (``routes/``)."""
