"""
twisted_lb: a load-balancing reverse proxy built on Twisted, for clusters of
Apache Tomcat nodes reached over AJP/1.3, HTTP(S) and WebSocket.

The public, embeddable surface is re-exported from L{twisted_lb.api}.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
