package lbtest;

import java.io.IOException;
import java.io.OutputStream;

import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

/**
 * "/big?bytes=N[&amp;chunked=1]": N bytes where byte i is (i % 251), written 64 KiB at a time,
 * with a Content-Length unless chunked=1 (then the response is flushed early so that HTTP/1.1
 * uses chunked transfer coding).
 */
public class BigServlet extends HttpServlet {

    private static final long serialVersionUID = 1L;
    private static final int WRITE = 65536;
    private static final byte[] PATTERN = new byte[WRITE + 251];

    static {
        for (int i = 0; i < PATTERN.length; i++) {
            PATTERN[i] = (byte) (i % 251);
        }
    }

    @Override
    protected void service(HttpServletRequest request, HttpServletResponse response)
            throws IOException {
        long total = Util.longParam(request, "bytes", 1024);
        boolean chunked = "1".equals(request.getParameter("chunked"));
        response.setContentType("application/octet-stream");
        response.setHeader("X-Node", Util.node());
        if (!chunked) {
            response.setContentLengthLong(total);
        }
        if ("HEAD".equals(request.getMethod())) {
            return;
        }
        OutputStream out = response.getOutputStream();
        if (chunked) {
            response.flushBuffer();
        }
        long written = 0;
        while (written < total) {
            int n = (int) Math.min(WRITE, total - written);
            out.write(PATTERN, (int) (written % 251), n);
            written += n;
        }
        if (chunked) {
            out.flush();
        }
    }
}
