package lbtest;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

/**
 * "/status?code=N": answers with status N through setStatus. 204, 304 and 404 get no body; other
 * codes a small text body. "code=500&amp;throw=1" throws a ServletException instead (Tomcat's
 * error page). Every "header=Name:Value" parameter adds that response header.
 */
public class StatusServlet extends HttpServlet {

    private static final long serialVersionUID = 1L;

    @Override
    protected void service(HttpServletRequest request, HttpServletResponse response)
            throws ServletException, IOException {
        int code = (int) Util.longParam(request, "code", 200);
        if (code == 500 && "1".equals(request.getParameter("throw"))) {
            throw new ServletException("thrown on purpose by /status on " + Util.node());
        }
        String[] headers = request.getParameterValues("header");
        if (headers != null) {
            for (String header : headers) {
                int colon = header.indexOf(':');
                if (colon > 0) {
                    response.addHeader(header.substring(0, colon).trim(),
                            header.substring(colon + 1).trim());
                }
            }
        }
        response.setStatus(code);
        if (code == 204 || code == 304 || code == 404 || code < 200) {
            return;
        }
        byte[] body = ("status " + code + " from " + Util.node() + "\n")
                .getBytes(StandardCharsets.US_ASCII);
        response.setContentType("text/plain;charset=UTF-8");
        response.setContentLength(body.length);
        response.getOutputStream().write(body);
    }
}
