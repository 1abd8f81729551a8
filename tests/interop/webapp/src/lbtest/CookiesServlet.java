package lbtest;

import java.io.IOException;
import java.util.Map;

import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

/** Sends three Set-Cookie headers: "a=1", "b=2; Path=/app" and "c=3; HttpOnly". */
public class CookiesServlet extends HttpServlet {

    private static final long serialVersionUID = 1L;

    @Override
    protected void service(HttpServletRequest request, HttpServletResponse response)
            throws IOException {
        response.addHeader("Set-Cookie", "a=1");
        response.addHeader("Set-Cookie", "b=2; Path=/app");
        response.addHeader("Set-Cookie", "c=3; HttpOnly");
        Map<String, Object> doc = Json.object();
        doc.put("node", Util.node());
        doc.put("cookies", 3);
        Util.sendJson(response, doc);
    }
}
