package lbtest;

import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.cert.X509Certificate;
import java.util.Collections;
import java.util.List;
import java.util.Map;

import jakarta.servlet.ServletException;
import jakarta.servlet.http.Cookie;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

/**
 * Describes the request it received as JSON, for every method (GET, HEAD, PATCH, PROPFIND, ...):
 * service() is overridden so that HttpServlet's per-method dispatch never answers 405/501.
 * With "?session=1" it creates the HTTP session first.
 */
public class EchoServlet extends HttpServlet {

    private static final long serialVersionUID = 1L;

    /** Request attributes reported when present. */
    private static final String[] ATTRIBUTES = {
        "jakarta.servlet.request.secure_protocol",
        "jakarta.servlet.request.cipher_suite",
        "jakarta.servlet.request.key_size",
        "jakarta.servlet.request.ssl_session_id",
        "jakarta.servlet.request.ssl_session_mgr",
        "AJP_LOCAL_ADDR",
        "AJP_REMOTE_PORT",
        "AJP_SSL_PROTOCOL",
        "org.apache.tomcat.util.net.secure_protocol_version",
        "org.apache.catalina.AccessLog.RemoteAddr",
    };

    @Override
    protected void service(HttpServletRequest request, HttpServletResponse response)
            throws ServletException, IOException {
        if ("1".equals(request.getParameter("session"))) {
            request.getSession(true);
        }
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new ServletException(e);
        }
        long length = 0;
        byte[] buffer = new byte[65536];
        try (InputStream in = request.getInputStream()) {
            int n;
            while ((n = in.read(buffer)) != -1) {
                digest.update(buffer, 0, n);
                length += n;
            }
        }

        Map<String, Object> doc = Json.object();
        doc.put("node", Util.node());
        doc.put("method", request.getMethod());
        doc.put("requestURI", request.getRequestURI());
        doc.put("queryString", request.getQueryString());
        doc.put("requestURL", request.getRequestURL().toString());
        doc.put("contextPath", request.getContextPath());
        doc.put("servletPath", request.getServletPath());
        doc.put("pathInfo", request.getPathInfo());
        doc.put("protocol", request.getProtocol());
        doc.put("scheme", request.getScheme());
        doc.put("isSecure", request.isSecure());
        doc.put("serverName", request.getServerName());
        doc.put("serverPort", request.getServerPort());
        doc.put("remoteAddr", request.getRemoteAddr());
        doc.put("remoteHost", request.getRemoteHost());
        doc.put("remotePort", request.getRemotePort());
        doc.put("localAddr", request.getLocalAddr());
        doc.put("localName", request.getLocalName());
        doc.put("localPort", request.getLocalPort());
        doc.put("remoteUser", request.getRemoteUser());
        doc.put("authType", request.getAuthType());
        doc.put("contentType", request.getContentType());
        doc.put("contentLength", request.getContentLengthLong());
        doc.put("characterEncoding", request.getCharacterEncoding());

        List<Object> headers = Json.array();
        for (String name : Collections.list(request.getHeaderNames())) {
            for (String value : Collections.list(request.getHeaders(name))) {
                List<Object> pair = Json.array();
                pair.add(name);
                pair.add(value);
                headers.add(pair);
            }
        }
        doc.put("headers", headers);

        List<Object> cookies = Json.array();
        Cookie[] received = request.getCookies();
        if (received != null) {
            for (Cookie cookie : received) {
                List<Object> pair = Json.array();
                pair.add(cookie.getName());
                pair.add(cookie.getValue());
                cookies.add(pair);
            }
        }
        doc.put("cookies", cookies);

        doc.put("body_length", length);
        doc.put("body_sha256", hex(digest.digest()));
        doc.put("session", Util.sessionId(request));
        doc.put("requestedSessionId", request.getRequestedSessionId());
        doc.put("requestedSessionIdValid", request.isRequestedSessionIdValid());

        Map<String, Object> attributes = Json.object();
        for (String name : ATTRIBUTES) {
            Object value = request.getAttribute(name);
            if (value != null) {
                attributes.put(name, String.valueOf(value));
            }
        }
        Object certs = request.getAttribute("jakarta.servlet.request.X509Certificate");
        if (certs instanceof X509Certificate[]) {
            List<Object> subjects = Json.array();
            for (X509Certificate cert : (X509Certificate[]) certs) {
                subjects.add(cert.getSubjectX500Principal().getName());
            }
            attributes.put("jakarta.servlet.request.X509Certificate", subjects);
        }
        doc.put("attributes", attributes);
        doc.put("attributeNames", Collections.list(request.getAttributeNames()));

        Util.sendJson(response, doc);
    }

    private static String hex(byte[] bytes) {
        StringBuilder out = new StringBuilder(bytes.length * 2);
        for (byte b : bytes) {
            out.append(Character.forDigit((b >> 4) & 0xf, 16));
            out.append(Character.forDigit(b & 0xf, 16));
        }
        return out.toString();
    }
}
