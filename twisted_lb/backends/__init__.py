"""Backends: how the proxy talks to one member (AJP/1.3, HTTP and HTTPS)."""
