"""Rasa input channels of the contact center (loaded by Rasa, in its own environment)."""
