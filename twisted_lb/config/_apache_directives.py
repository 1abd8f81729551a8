"""
The class of every Apache httpd directive twisted_lb knows of, apart from
those the reader implements: I{accepted} (read, no effect on proxying, with
the reason given once per directive in a warning) or I{refused} (an error
with the reason and what to do instead).

A directive in neither table and without a reader is refused as unknown.
C{docs/migrating-from-apache.md} lists the same classes.
"""

from __future__ import annotations

__all__ = ["ACCEPTED", "ACCEPTED_SECTIONS", "REFUSED", "REFUSED_SECTIONS", "accepted_reason"]

_LOGS = "twisted_lb writes its own logs (access_log and log_format in the native file)"
_PROCESSES = (
    "twisted_lb's processes are set by twistd and the workers setting, not by Apache's "
    "process and MPM settings"
)
_MODULES = "twisted_lb has no loadable modules; what it supports is built in"
_IDENTITY = "it names or describes the server; it does not change what is proxied"
_FILES = "it is about files Apache serves itself; twisted_lb serves no files, it only proxies"
_ICONS = "it configures Apache's directory listings; twisted_lb serves no files"
_ALIAS = (
    "twisted_lb serves no files and runs no scripts: a request for this path is proxied when a "
    "ProxyPass covers it (in Apache, ProxyPass wins over Alias too), and answered 404 otherwise"
)
_MIME = "it sets types of files Apache serves itself; twisted_lb passes the members' types on"
_COMPRESSION = (
    "twisted_lb does not compress: bodies are passed on as the members send them (let Tomcat "
    "compress, compression=on on its connector)"
)
_CACHE = "twisted_lb caches nothing: every request goes to a member"
_ENV = (
    "it sets environment variables for CGI and for conditions twisted_lb does not evaluate; "
    "nothing that is proxied depends on it"
)
_TLS_SERVER = "twisted_lb manages TLS sessions, randomness and key passphrases itself"
_CONNECTIONS = (
    "twisted_lb's own client limits apply (the [limits] table of the native file: "
    "idle_timeout, header_timeout, max_headers, max_header_bytes)"
)
_STATUS = "the status and balancer-manager pages are on twisted_lb's admin listener ([admin])"
_HTTP2 = "twisted_lb offers HTTP/2 by ALPN on TLS listeners on its own"
_EXPIRES = (
    "Expires/Cache-Control headers are not added by twisted_lb; the members' headers pass "
    "unchanged (set them in the application, or with Header set)"
)

#: Directives read with no effect on proxying, and why.
ACCEPTED: dict[str, str] = {
    # logging
    **dict.fromkeys(
        (
            "errorlog",
            "customlog",
            "transferlog",
            "logformat",
            "loglevel",
            "errorlogformat",
            "bufferedlogs",
            "globallog",
            "forensiclog",
            "logiotrackttfb",
            "cookielog",
            "rewritelog",
            "rewriteloglevel",
            "scriptlog",
            "scriptloglength",
            "scriptlogbuffer",
        ),
        _LOGS,
    ),
    # processes and MPMs
    **dict.fromkeys(
        (
            "user",
            "group",
            "pidfile",
            "startservers",
            "minspareservers",
            "maxspareservers",
            "minsparethreads",
            "maxsparethreads",
            "threadsperchild",
            "threadlimit",
            "serverlimit",
            "maxclients",
            "maxrequestworkers",
            "maxconnectionsperchild",
            "maxrequestsperchild",
            "listenbacklog",
            "listencoresbucketsratio",
            "asyncrequestworkerfactor",
            "mutex",
            "lockfile",
            "acceptmutex",
            "scoreboardfile",
            "coredumpdirectory",
            "gracefulshutdowntimeout",
            "defaultruntimedir",
            "enablemmap",
            "enablesendfile",
            "threadstacksize",
            "maxmemfree",
            "receivebuffersize",
            "sendbuffersize",
            "acceptfilter",
            "chrootdir",
            "rlimitcpu",
            "rlimitmem",
            "rlimitnproc",
            "extendedstatus",
            "seerequesttail",
            "serverroot",
            "define",
            "undefine",
            "suexecusergroup",
            "maxranges",
            "maxrangeoverlaps",
            "maxrangereversals",
            "regexdefaultoptions",
            "qualifyredirecturl",
            "mergetrailers",
            "mergeslashes",
        ),
        _PROCESSES,
    ),
    # modules
    **dict.fromkeys(("loadmodule", "loadfile", "addmodule", "clearmodulelist"), _MODULES),
    # identity
    **dict.fromkeys(
        (
            "serveradmin",
            "serversignature",
            "servertokens",
            "namevirtualhost",
            "usecanonicalname",
            "usecanonicalphysicalport",
            "hostnamelookups",
            "serverpath",
            "httpprotocoloptions",
            "protocolshonororder",
        ),
        _IDENTITY,
    ),
    # files
    **dict.fromkeys(
        (
            "documentroot",
            "directoryindex",
            "directoryindexredirect",
            "directoryslash",
            "fallbackresource",
            "options",
            "allowoverride",
            "allowoverridelist",
            "accessfilename",
            "userdir",
            "xbithack",
            "checkspelling",
            "checkcaseonly",
            "contentdigest",
            "fileetag",
            "enableexceptionhook",
            "scriptinterpretersource",
            "cgidscripttimeout",
            "scriptsock",
            "sethandler",
            "addhandler",
            "removehandler",
            "action",
            "script",
            "dav",
            "davlockdb",
            "davmintimeout",
            "davdepthinfinity",
            "ssilegacyexprparser",
            "ssierrormsg",
            "ssitimeformat",
        ),
        _FILES,
    ),
    **dict.fromkeys(
        (
            "addicon",
            "addiconbytype",
            "addiconbyencoding",
            "addalt",
            "addaltbytype",
            "addaltbyencoding",
            "adddescription",
            "defaulticon",
            "indexoptions",
            "indexignore",
            "indexignorereset",
            "indexorderdefault",
            "indexstylesheet",
            "indexheadinsert",
            "headername",
            "readmename",
        ),
        _ICONS,
    ),
    **dict.fromkeys(
        (
            "addtype",
            "addcharset",
            "addlanguage",
            "addencoding",
            "removetype",
            "removecharset",
            "removelanguage",
            "removeencoding",
            "removeinputfilter",
            "removeoutputfilter",
            "typesconfig",
            "defaulttype",
            "forcetype",
            "defaultlanguage",
            "languagepriority",
            "forcelanguagepriority",
            "adddefaultcharset",
            "mimemagicfile",
            "multiviewsmatch",
            "modmimeusepathinfo",
            "cachenegotiateddocs",
            "addinputfilter",
            "addoutputfilter",
        ),
        _MIME,
    ),
    **dict.fromkeys(
        (
            "addoutputfilterbytype",
            "setoutputfilter",
            "setinputfilter",
            "filterdeclare",
            "filterprovider",
            "filterchain",
            "filterprotocol",
            "filtertrace",
            "deflatecompressionlevel",
            "deflatebuffersize",
            "deflatememlevel",
            "deflatewindowsize",
            "deflatefilternote",
            "deflateinflatelimitrequestbody",
            "deflatealteretag",
            "brotlicompressionquality",
            "brotlicompressionwindow",
            "brotlicompressionmaxinputblock",
            "brotlifilternote",
            "brotlialteretag",
        ),
        _COMPRESSION,
    ),
    **dict.fromkeys(
        (
            "setenv",
            "unsetenv",
            "passenv",
            "setenvif",
            "setenvifnocase",
            "setenvifexpr",
            "browsermatch",
            "browsermatchnocase",
        ),
        _ENV,
    ),
    **dict.fromkeys(
        (
            "sslsessioncache",
            "sslsessioncachetimeout",
            "sslrandomseed",
            "sslpassphrasedialog",
            "sslmutex",
            "sslstaplingcache",
            "sslusestapling",
            "sslstaplingrespondertimeout",
            "sslstaplingreturnrespondererrors",
            "sslstaplingfaketrylater",
            "sslstaplingstandardcachetimeout",
            "sslstaplingerrorcachetimeout",
            "sslcompression",
            "sslsessiontickets",
            "sslcryptodevice",
            "sslfips",
            "sslstrictsnivhostcheck",
            "ssloptions",
            "sslsrpverifierfile",
            "sslsrpunknownuserseed",
            "sslsessionticketkeyfile",
        ),
        _TLS_SERVER,
    ),
    **dict.fromkeys(
        (
            "keepalive",
            "maxkeepaliverequests",
            "keepalivetimeout",
            "requestreadtimeout",
            "limitrequestfields",
            "limitrequestfieldsize",
            "limitrequestline",
            "limitxmlrequestbody",
            "limitinternalrecursion",
        ),
        _CONNECTIONS,
    ),
    **dict.fromkeys(
        (
            "proxystatus",
            "balancerpersist",
            "balancerinherit",
            "balancergrowth",
            "proxyhctpsize",
        ),
        _STATUS,
    ),
    **dict.fromkeys(
        (
            "h2direct",
            "h2upgrade",
            "h2push",
            "h2maxsessionstreams",
            "h2streammaxmemsize",
            "h2windowsize",
            "h2moderntlsonly",
            "h2serializeheaders",
            "h2maxworkers",
            "h2minworkers",
            "h2copyfiles",
            "h2earlyhints",
            "h2pushpriority",
            "h2tlscooldownsecs",
            "h2tlswarmupsize",
            "h2padding",
            "h2stylesheet",
        ),
        _HTTP2,
    ),
    **dict.fromkeys(("expiresactive", "expiresdefault", "expiresbytype"), _EXPIRES),
    "sslverifydepth": "twisted_lb accepts client certificate chains of any depth up to the CA",
    "sslproxycheckpeerexpire": "twisted_lb checks the expiry of member certificates whenever it "
    "verifies them (SSLProxyVerify require), and checks nothing when it does not, as Apache",
    "errordocument": "twisted_lb answers its own error pages (502, 503, 504, 403 ...) and "
    "passes the members' pages unchanged",
    "proxyiobuffersize": "twisted_lb sizes its buffers itself (iobuffersize= sets the AJP packet "
    "size of a member)",
    "proxyreceivebuffersize": "twisted_lb leaves socket buffers to the kernel",
    "proxybadheader": "twisted_lb always refuses a malformed header from a member (502), as "
    "ProxyBadHeader IsError does",
    "proxymaxforwards": "twisted_lb does not rewrite Max-Forwards (Apache 2.4 no longer sets it "
    "either unless asked)",
    "proxyerroroverride": "the members' error pages pass unchanged; twisted_lb's own pages are "
    "for 502/503/504 it produces",
    "proxysourceaddress": "twisted_lb connects from the address the kernel chooses",
    "proxyexpressdbmfile": "mod_proxy_express is not used: members are configured explicitly",
    "proxyexpressenable": "mod_proxy_express is not used: members are configured explicitly",
    "proxyhtmlenable": "twisted_lb does not rewrite HTML bodies (links in pages are the "
    "application's; ProxyPassReverse-style rewriting is for headers only)",
    "proxyhtmlurlmap": "twisted_lb does not rewrite HTML bodies",
    "proxyhtmlextended": "twisted_lb does not rewrite HTML bodies",
    "proxyhtmlinterp": "twisted_lb does not rewrite HTML bodies",
    "proxyhtmldoctype": "twisted_lb does not rewrite HTML bodies",
    "proxyhtmllinks": "twisted_lb does not rewrite HTML bodies",
    "proxyhtmlevents": "twisted_lb does not rewrite HTML bodies",
    "proxyhtmlmeta": "twisted_lb does not rewrite HTML bodies",
    "proxyhtmlcharsetout": "twisted_lb does not rewrite HTML bodies",
    "proxyhtmlbufsize": "twisted_lb does not rewrite HTML bodies",
    "proxyhtmlstripcomments": "twisted_lb does not rewrite HTML bodies",
    "proxyhtmldocrootdir": "twisted_lb does not rewrite HTML bodies",
    **dict.fromkeys(("alias", "aliasmatch", "scriptalias", "scriptaliasmatch"), _ALIAS),
    "rewritebase": "RewriteBase is for per-directory rules, which do not apply to proxied paths",
    "satisfy": "it combines access rules; alone it changes nothing",
}

#: Directives refused, with the reason and what to do instead.
REFUSED: dict[str, str] = {
    "rewritemap": "RewriteMap is not supported; write the mapping out as RewriteRule lines",
    "authgroupfile": "groups are not supported; list the users with Require user",
    "authdigestprovider": "Digest authentication is not supported; use AuthType Basic over HTTPS",
    "authbasicauthoritative": "only one provider (file) is supported, so there is nothing to "
    "fall back to; remove the line",
    "proxyremote": "twisted_lb does not chain to another proxy; members are reached directly",
    "proxyremotematch": "twisted_lb does not chain to another proxy; members are reached directly",
    "allowconnect": "CONNECT is never offered: twisted_lb is a reverse proxy only",
    "proxyblock": "forward proxying is never offered, so there is nothing to block",
    "proxydomain": "forward proxying is never offered",
    "sslcacertificatepath": "use SSLCACertificateFile (one PEM file of the CAs)",
    "sslcarevocationfile": "certificate revocation lists are not supported",
    "sslcarevocationpath": "certificate revocation lists are not supported",
    "sslcarevocationcheck": "certificate revocation lists are not supported",
    "sslproxyprotocol": "member TLS versions are not supported in Apache files; remove the line",
    "sslproxyciphersuite": "member cipher lists are not supported in Apache files; remove the line",
    "sslproxycacertificatepath": "use SSLProxyCACertificateFile",
    "sslproxycarevocationfile": "certificate revocation lists are not supported",
    "sslproxycarevocationpath": "certificate revocation lists are not supported",
    "sslproxycarevocationcheck": "certificate revocation lists are not supported",
    "sslproxymachinecertificatepath": "use SSLProxyMachineCertificateFile",
    "sslproxymachinecertificatechainfile": "use SSLProxyMachineCertificateFile",
    "sslopensslconfcmd": "raw OpenSSL commands are not supported",
    "sslinsecurerenegotiation": "insecure renegotiation is never offered",
    "sslrenegbuffersize": "renegotiation is not supported",
    "sslrequire": "access control by certificate expression is not supported",
    "sslusername": "authentication by certificate is not supported",
    "proxyhctemplate": "health-check templates are not supported; put the hc* parameters on "
    "each BalancerMember",
    "keptbodysize": "kept bodies are not supported",
}

#: Sections read with no effect on proxying (their contents are not used).
ACCEPTED_SECTIONS: dict[str, str] = {
    "directory": _FILES,
    "directorymatch": _FILES,
    "files": _FILES,
    "filesmatch": _FILES,
}

#: Sections refused, with the reason.
REFUSED_SECTIONS: dict[str, str] = {
    "proxymatch": "regular-expression proxy sections are not supported; use <Proxy "
    "balancer://name>",
    "limit": "per-method access rules are not supported; use Require in the <Location> for all "
    "methods",
    "limitexcept": "per-method access rules are not supported",
    "if": "<If> expressions are not supported",
    "elseif": "<If> expressions are not supported",
    "else": "<If> expressions are not supported",
    "macro": "mod_macro is not supported; expand the macro by hand",
    "authnprovideralias": "provider aliases are not supported; use AuthUserFile",
    "authzprovideralias": "provider aliases are not supported; use Require user or valid-user",
    "requireall": "<RequireAll> (every rule must hold) is not supported; list the addresses "
    "that may pass with Require ip",
    "requirenone": "<RequireNone> is not supported; list the addresses that may pass with "
    "Require ip",
}


def accepted_reason(key: str) -> str | None:
    """Why directive C{key} (lower case) is accepted without effect, or C{None}."""
    if key in ACCEPTED:
        return ACCEPTED[key]
    if key.startswith("cache"):
        return _CACHE
    return None
