/*
 * onboard: the proxy's own pages, for a client that asks the proxy for
 * itself (a plain-HTTP request to the listen address, or to the magic host
 * peephole.local through it): an HTML page saying what peephole is, with
 * the CA certificate to download (PEM, DER, PKCS#12), the per-OS trust
 * steps and the proxy's status; the CA files; and a PAC file.  Pure: builds
 * responses into an evbuffer, never touches a socket.  A struct onboard is
 * built once at start-up and read-only after, so every worker may share it.
 */
#ifndef PEEPHOLE_ONBOARD_H
#define PEEPHOLE_ONBOARD_H

#include <stddef.h>

struct ca;
struct evbuffer;
struct onboard;

/* The magic host name that reaches these pages through the proxy. */
#define ONBOARD_HOST "peephole.local"

/*
 * Encode the CA certificate of ca in the three formats, remember
 * proxy_host:proxy_port (the listen address, a name or an IPv4/IPv6
 * literal, brackets optional) for the PAC file and the page.  The caller
 * keeps ca; nothing of it is borrowed.  NULL with a message in err on a
 * bad host or port, or on ENOMEM.  Start-up only.
 */
struct onboard *onboard_new(const struct ca *ca, const char *proxy_host,
    unsigned proxy_port, char *err, size_t errlen)
    __attribute__((warn_unused_result));

void onboard_free(struct onboard *o);

/*
 * Answer a GET or HEAD of path (without the query) on the proxy itself:
 *   /           text/html: what peephole is, links to the files below,
 *               the CA fingerprint, proxy settings, the per-OS trust
 *               steps, and status_html (NULL or "": no status section)
 *   /ca.pem     application/x-pem-file   (attachment peephole-ca.pem)
 *   /ca.cer     application/pkix-cert, DER (attachment peephole-ca.cer)
 *   /ca.p12     application/x-pkcs12     (attachment peephole-ca.p12)
 *   /proxy.pac  application/x-ns-proxy-autoconfig: DIRECT for plain host
 *               names, localhost and 127.0.0.0/8, else the proxy
 *   otherwise   a 404 page
 * status_html goes into the page as is: escape anything that came from
 * the network with onboard_escape().  pac_host, when not NULL, replaces
 * the proxy host given to onboard_new in the PAC file and the page (for a
 * proxy listening on 0.0.0.0 or ::, the address the client connected to);
 * one that is not a plausible host name or address literal is ignored.
 * Appends one complete HTTP/1.1 response (Content-Length always the body's
 * length, Cache-Control: no-store, Connection: keep-alive or close per
 * keep_alive) to out; head_only leaves the body out.  Returns the status
 * written (200 or 404), or -1 on ENOMEM with out unchanged.  Any thread.
 */
int onboard_respond(const struct onboard *o, const char *path,
    const char *status_html, const char *pac_host, int keep_alive,
    int head_only, struct evbuffer *out) __attribute__((warn_unused_result));

/*
 * s with & < > " ' replaced by HTML character references, in a new string
 * the caller frees; NULL on ENOMEM.  For building status_html.
 */
char *onboard_escape(const char *s) __attribute__((warn_unused_result));

#endif
