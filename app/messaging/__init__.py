"""Messages: what Leadline sends and receives, and how it sends them (SPEC R5)."""
