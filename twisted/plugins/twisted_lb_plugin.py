"""twistd plugin: C{twistd lbproxy}. Everything lives in L{twisted_lb.tap}."""

from twisted.application.service import ServiceMaker

lbproxy = ServiceMaker(
    "twisted_lb load-balancing reverse proxy",
    "twisted_lb.tap",
    "Load-balancing reverse proxy for Tomcat clusters (AJP/1.3, HTTP(S), WebSocket)",
    "lbproxy",
)
