package lbtest;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Map;

import jakarta.websocket.CloseReason;
import jakarta.websocket.EndpointConfig;
import jakarta.websocket.OnMessage;
import jakarta.websocket.OnOpen;
import jakarta.websocket.Session;
import jakarta.websocket.server.ServerEndpoint;

/**
 * "/ws" (and "/websocket-tunnel", see WsTunnelEndpoint): greets with a text message {node,
 * session, subprotocol, query}, then echoes text as text and binary as binary. The text
 * "close:CODE:REASON" makes the server close with that code and reason. Subprotocols "chat"
 * and "superchat" are supported. Messages up to 1 MiB.
 */
@ServerEndpoint(value = "/ws", subprotocols = {"chat", "superchat"},
        configurator = WsConfigurator.class)
public class WsEndpoint {

    static final int MAX_MESSAGE = 1024 * 1024;

    @OnOpen
    public void onOpen(Session session, EndpointConfig config) throws IOException {
        Map<String, Object> doc = Json.object();
        doc.put("node", Util.node());
        doc.put("session", config.getUserProperties().get(WsConfigurator.SESSION));
        String subprotocol = session.getNegotiatedSubprotocol();
        doc.put("subprotocol", subprotocol == null || subprotocol.isEmpty() ? null : subprotocol);
        doc.put("query", config.getUserProperties().get(WsConfigurator.QUERY));
        session.getBasicRemote().sendText(Json.encode(doc));
    }

    @OnMessage(maxMessageSize = MAX_MESSAGE)
    public void onText(Session session, String message) throws IOException {
        if (message.startsWith("close:")) {
            String[] parts = message.split(":", 3);
            int code = Integer.parseInt(parts[1].trim());
            String reason = parts.length > 2 ? parts[2] : "";
            session.close(new CloseReason(CloseReason.CloseCodes.getCloseCode(code), reason));
            return;
        }
        session.getBasicRemote().sendText(message);
    }

    @OnMessage(maxMessageSize = MAX_MESSAGE)
    public void onBinary(Session session, ByteBuffer message) throws IOException {
        session.getBasicRemote().sendBinary(message);
    }
}
