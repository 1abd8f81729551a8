"""Tests for the sans-IO AJP/1.3 codec, L{twisted_lb.ajp}."""
