<%@ page contentType="text/plain;charset=UTF-8" session="true" trimDirectiveWhitespaces="true" %>
<%
    Integer counter = (Integer) session.getAttribute("jsp_counter");
    counter = counter == null ? 1 : counter + 1;
    session.setAttribute("jsp_counter", counter);
%>
node=<%= System.getProperty("node") %> counter=<%= counter %> session=<%= session.getId() %>
