"""Custom actions for the Rasa action server (rasa-sdk, Python 3.10)."""
