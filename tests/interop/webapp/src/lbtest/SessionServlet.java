package lbtest;

import java.io.IOException;
import java.util.Map;

import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpSession;

/**
 * Creates the session if absent and increments its Integer "counter" attribute. The attribute is
 * set again on every request so that DeltaManager replicates the change. "?invalidate=1"
 * invalidates the session instead.
 */
public class SessionServlet extends HttpServlet {

    private static final long serialVersionUID = 1L;

    @Override
    protected void service(HttpServletRequest request, HttpServletResponse response)
            throws IOException {
        Map<String, Object> doc = Json.object();
        doc.put("node", Util.node());
        if ("1".equals(request.getParameter("invalidate"))) {
            HttpSession session = request.getSession(false);
            doc.put("invalidated", session == null ? null : session.getId());
            if (session != null) {
                session.invalidate();
            }
            doc.put("counter", 0);
            doc.put("session", null);
            Util.sendJson(response, doc);
            return;
        }
        HttpSession session = request.getSession(true);
        Integer counter = (Integer) session.getAttribute("counter");
        counter = counter == null ? 1 : counter + 1;
        session.setAttribute("counter", counter);
        doc.put("counter", counter);
        doc.put("session", session.getId());
        doc.put("new", session.isNew());
        doc.put("requestedSessionId", request.getRequestedSessionId());
        Util.sendJson(response, doc);
    }
}
