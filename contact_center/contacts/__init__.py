"""The contact: its state machine, its rows, and the service that moves it (one module per job)."""
