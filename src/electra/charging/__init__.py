"""Charging sessions as the platform sees them: id tokens, the session service over the store."""
