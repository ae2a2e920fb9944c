"""Programs that act as clients of a running server (simulator, WebSocket client, synthetic peers); no server code imports them."""
