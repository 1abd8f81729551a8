package lbtest;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpSession;

/** Helpers shared by the test servlets. */
final class Util {

    private Util() {
    }

    /** The node name: the system property "node" given in CATALINA_OPTS. */
    static String node() {
        return System.getProperty("node", "unknown");
    }

    static String sessionId(HttpServletRequest request) {
        HttpSession session = request.getSession(false);
        return session == null ? null : session.getId();
    }

    static long longParam(HttpServletRequest request, String name, long dflt) {
        String value = request.getParameter(name);
        if (value == null || value.isEmpty()) {
            return dflt;
        }
        return Long.parseLong(value.trim());
    }

    /** Writes a JSON document with an exact Content-Length. */
    static void sendJson(HttpServletResponse response, Object document) throws IOException {
        byte[] body = (Json.encode(document) + "\n").getBytes(StandardCharsets.US_ASCII);
        response.setContentType("application/json;charset=UTF-8");
        response.setHeader("Cache-Control", "no-store");
        response.setContentLength(body.length);
        response.getOutputStream().write(body);
    }
}
