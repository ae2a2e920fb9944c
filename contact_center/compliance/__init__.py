"""Compliance: the access grant, search, and audited reads of sealed recordings."""
