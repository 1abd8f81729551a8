package lbtest;

import java.io.IOException;
import java.util.Map;

import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

/**
 * "/slow?ms=N": sleeps N milliseconds, then answers JSON. With "head=1" the status line and
 * headers are committed (chunked) before the sleep and the body follows after it.
 */
public class SlowServlet extends HttpServlet {

    private static final long serialVersionUID = 1L;

    @Override
    protected void service(HttpServletRequest request, HttpServletResponse response)
            throws ServletException, IOException {
        long ms = Util.longParam(request, "ms", 1000);
        Map<String, Object> doc = Json.object();
        doc.put("node", Util.node());
        doc.put("slept_ms", ms);
        if ("1".equals(request.getParameter("head"))) {
            response.setContentType("application/json;charset=UTF-8");
            response.setHeader("X-Node", Util.node());
            response.flushBuffer();
            sleep(ms);
            response.getWriter().write(Json.encode(doc) + "\n");
            return;
        }
        sleep(ms);
        Util.sendJson(response, doc);
    }

    private static void sleep(long ms) throws ServletException {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ServletException(e);
        }
    }
}
