"""One router per resource; each module holds its routes and their request validation."""
