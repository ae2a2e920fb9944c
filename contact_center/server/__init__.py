"""The process: application factory, cleanup contexts, workers, embedded Valkey, logs, CLI."""
