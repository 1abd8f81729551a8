"""Faults under load: a real proxy process before two real Tomcat nodes that are killed,
paused and restarted at random while clients keep sending requests (see docs/security.md)."""
