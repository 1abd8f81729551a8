package lbtest;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

/**
 * Shows when an upload is read: after the first bytes of the body it answers (and flushes)
 * "started <Content-Length as Tomcat sees it> <time in ms>", then reads the rest and ends with
 * "done <bytes> <sha256>". A client that paused mid-upload knows from that time whether Tomcat
 * was reading the body while it was still arriving.
 */
public class UploadServlet extends HttpServlet {

    private static final long serialVersionUID = 1L;

    @Override
    protected void service(HttpServletRequest request, HttpServletResponse response)
            throws ServletException, IOException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new ServletException(e);
        }
        response.setContentType("text/plain");
        PrintWriter out = response.getWriter();
        long length = 0;
        boolean started = false;
        byte[] buffer = new byte[65536];
        try (InputStream in = request.getInputStream()) {
            int n;
            while ((n = in.read(buffer)) != -1) {
                digest.update(buffer, 0, n);
                length += n;
                if (!started) {
                    started = true;
                    out.print("started " + request.getContentLengthLong() + " "
                            + System.currentTimeMillis() + "\n");
                    out.flush();
                    response.flushBuffer();
                }
            }
        }
        StringBuilder hex = new StringBuilder();
        for (byte b : digest.digest()) {
            hex.append(String.format("%02x", b));
        }
        out.print("done " + length + " " + hex + "\n");
    }
}
