"""API handlers: the functions both client transports and the HTTP server call."""
