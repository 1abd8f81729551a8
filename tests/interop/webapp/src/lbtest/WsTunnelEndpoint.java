package lbtest;

import jakarta.websocket.server.ServerEndpoint;

/**
 * "/websocket-tunnel": the same endpoint as {@link WsEndpoint} (greeting {node, session, ...},
 * then echo) under the path of the first seed's WebSocket balancer; with the webapp deployed at
 * /xtam it answers at /xtam/websocket-tunnel. Tomcat maps the inherited annotated methods.
 */
@ServerEndpoint(value = "/websocket-tunnel", subprotocols = {"chat", "superchat"},
        configurator = WsConfigurator.class)
public class WsTunnelEndpoint extends WsEndpoint {
}
