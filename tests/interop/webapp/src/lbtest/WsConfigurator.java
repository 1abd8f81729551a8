package lbtest;

import jakarta.servlet.http.HttpSession;
import jakarta.websocket.HandshakeResponse;
import jakarta.websocket.server.HandshakeRequest;
import jakarta.websocket.server.ServerEndpointConfig;

/**
 * Reads the HTTP session (if any) of the upgrade request. Tomcat gives every connection its own
 * copy of the ServerEndpointConfig, so the user properties set here are per connection.
 */
public class WsConfigurator extends ServerEndpointConfig.Configurator {

    static final String SESSION = "lbtest.httpSessionId";
    static final String QUERY = "lbtest.queryString";

    @Override
    public void modifyHandshake(ServerEndpointConfig config, HandshakeRequest request,
            HandshakeResponse response) {
        Object session = request.getHttpSession();
        String id = session instanceof HttpSession ? ((HttpSession) session).getId() : null;
        // Tomcat's user properties map is a ConcurrentHashMap: a null value throws (NPE, 500).
        if (id != null) {
            config.getUserProperties().put(SESSION, id);
        }
        if (request.getQueryString() != null) {
            config.getUserProperties().put(QUERY, request.getQueryString());
        }
    }
}
