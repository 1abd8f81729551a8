package lbtest;

import java.io.IOException;

import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

/**
 * "/redirect?to=PATH": sendRedirect(PATH) (default "/app/echo"). The context is configured with
 * useRelativeRedirects="false", so the Location header is absolute.
 */
public class RedirectServlet extends HttpServlet {

    private static final long serialVersionUID = 1L;

    @Override
    protected void service(HttpServletRequest request, HttpServletResponse response)
            throws IOException {
        String to = request.getParameter("to");
        response.setHeader("X-Node", Util.node());
        response.sendRedirect(to == null || to.isEmpty() ? "/app/echo" : to);
    }
}
