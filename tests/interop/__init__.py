"""Interop tests of twisted_lb against real Apache Tomcat 10 nodes (see conftest.py)."""
