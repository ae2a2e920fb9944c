"""The WebSocket signalling: protocol models and their document, the connection, the handlers, the endpoint."""
