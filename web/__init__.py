"""The browser side: jinja2 templates and static ES modules, shipped as package data."""
