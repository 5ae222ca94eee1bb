/* onboard: see onboard.h. */
#include "proxy/http/onboard.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "proxy/http/respond.h"

/* Room for "[" + a DNS name or IPv6 literal + "]". */
#define ONBOARD_HOST_MAX 256

/* The CA files, in the order of onboard->file[]. */
static const struct onboard_file {
	const char *path;
	const char *fmt; /* for ca_export_mem */
	const char *ctype;
	const char *filename;
} onboard_files[] = {
    {"/ca.pem", "pem", "application/x-pem-file", "peephole-ca.pem"},
    {"/ca.cer", "der", "application/pkix-cert", "peephole-ca.cer"},
    {"/ca.p12", "p12", "application/x-pkcs12", "peephole-ca.p12"},
};

#define ONBOARD_NFILES (sizeof(onboard_files) / sizeof(onboard_files[0]))

struct onboard {
	unsigned char *file[ONBOARD_NFILES]; /* CA bytes per onboard_files */
	size_t filelen[ONBOARD_NFILES];
	char host[ONBOARD_HOST_MAX + 2]; /* ready for host:port: v6 in [] */
	unsigned port;
	char fingerprint[EVP_MAX_MD_SIZE * 3]; /* SHA-256, AB:CD:... */
	char *trust_html;                      /* ca_help(), escaped */
};

/*
 * Normalise a host for "host:port" into out: a DNS name or IPv4 literal
 * as is, an IPv6 literal (bracketed or not) in brackets.  Only letters,
 * digits and . - _ : are allowed, which also keeps it safe to put
 * unescaped into HTML and into the PAC file's JavaScript strings.  0 / -1.
 */
static int
onboard_host_norm(const char *in, char *out, size_t outlen)
{
	size_t len, i;
	int v6;

	if (in == NULL)
		return -1;
	len = strlen(in);
	if (len >= 2 && in[0] == '[' && in[len - 1] == ']') {
		in++;
		len -= 2;
	}
	if (len == 0 || len > ONBOARD_HOST_MAX - 2 || len + 3 > outlen)
		return -1;
	v6 = 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == ':')
			v6 = 1;
		else if (!isalnum(c) && c != '.' && c != '-' && c != '_')
			return -1;
	}
	snprintf(out, outlen, "%s%.*s%s", v6 ? "[" : "", (int)len, in,
	    v6 ? "]" : "");
	return 0;
}

/* The character reference for c, or NULL when c stands for itself. */
static const char *
onboard_entity(char c)
{
	switch (c) {
	case '&':
		return "&amp;";
	case '<':
		return "&lt;";
	case '>':
		return "&gt;";
	case '"':
		return "&quot;";
	case '\'':
		return "&#39;";
	default:
		return NULL;
	}
}

char *
onboard_escape(const char *s)
{
	const char *p, *rep;
	size_t len = 0;
	char *out, *q;

	for (p = s; *p != '\0'; p++)
		len += (rep = onboard_entity(*p)) != NULL ? strlen(rep) : 1;
	if ((out = malloc(len + 1)) == NULL)
		return NULL;
	for (p = s, q = out; *p != '\0'; p++) {
		if ((rep = onboard_entity(*p)) == NULL)
			*q++ = *p;
		else {
			memcpy(q, rep, strlen(rep));
			q += strlen(rep);
		}
	}
	*q = '\0';
	return out;
}

/* ca_help() for every OS, as HTML-escaped text for a <pre>.  NULL on error. */
static char *
onboard_trust_html(void)
{
	char *text = NULL, *html;
	size_t len = 0;
	FILE *fp;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return NULL;
	if (ca_help(NULL, onboard_files[0].filename, fp) == -1) {
		fclose(fp);
		free(text);
		return NULL;
	}
	if (fclose(fp) != 0) {
		free(text);
		return NULL;
	}
	html = onboard_escape(text);
	free(text);
	return html;
}

/* SHA-256 of the DER certificate as AB:CD:..., for checking by eye. */
static int
onboard_fingerprint(const struct ca *ca, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen, i;

	if (X509_digest(ca_cert(ca), EVP_sha256(), md, &mdlen) != 1 ||
	    (size_t)mdlen * 3 > outlen)
		return -1;
	for (i = 0; i < mdlen; i++)
		snprintf(out + i * 3, outlen - i * 3, "%02X%s", md[i],
		    i + 1 < mdlen ? ":" : "");
	return 0;
}

struct onboard *
onboard_new(const struct ca *ca, const char *proxy_host, unsigned proxy_port,
    char *err, size_t errlen)
{
	struct onboard *o = NULL;
	size_t i;

	if ((o = calloc(1, sizeof(*o))) == NULL) {
		snprintf(err, errlen, "onboard: %s", strerror(ENOMEM));
		return NULL;
	}
	if (onboard_host_norm(proxy_host, o->host, sizeof(o->host)) == -1) {
		snprintf(err, errlen, "onboard: bad proxy host '%s'",
		    proxy_host ? proxy_host : "");
		goto fail;
	}
	if (proxy_port == 0 || proxy_port > 65535) {
		snprintf(err, errlen, "onboard: bad proxy port %u", proxy_port);
		goto fail;
	}
	o->port = proxy_port;
	for (i = 0; i < ONBOARD_NFILES; i++)
		if (ca_export_mem(ca, onboard_files[i].fmt, &o->file[i],
			&o->filelen[i], err, errlen) == -1)
			goto fail;
	if (onboard_fingerprint(ca, o->fingerprint, sizeof(o->fingerprint)) ==
	    -1) {
		snprintf(err, errlen, "onboard: cannot digest the CA");
		goto fail;
	}
	if ((o->trust_html = onboard_trust_html()) == NULL) {
		snprintf(err, errlen, "onboard: %s", strerror(ENOMEM));
		goto fail;
	}
	return o;
fail:
	onboard_free(o);
	return NULL;
}

void
onboard_free(struct onboard *o)
{
	size_t i;

	if (o == NULL)
		return;
	for (i = 0; i < ONBOARD_NFILES; i++)
		free(o->file[i]);
	free(o->trust_html);
	free(o);
}

/*
 * Append to out the head for a body of len bytes, then the body from
 * bodybuf (drained) unless head_only.  filename, when set, makes it a
 * download.  0 / -1.
 */
static int
onboard_reply(struct evbuffer *out, int status, const char *ctype,
    const char *filename, struct evbuffer *bodybuf, int keep_alive,
    int head_only)
{
	size_t len = evbuffer_get_length(bodybuf);

	if (evbuffer_add_printf(out,
		"HTTP/1.1 %d %s\r\n"
		"Server: peephole\r\n"
		"Content-Type: %s\r\n"
		"Content-Length: %zu\r\n"
		"Cache-Control: no-store\r\n"
		"X-Content-Type-Options: nosniff\r\n",
		status, respond_reason(status), ctype, len) < 0)
		return -1;
	if (filename != NULL &&
	    evbuffer_add_printf(out,
		"Content-Disposition: attachment; filename=\"%s\"\r\n",
		filename) < 0)
		return -1;
	if (evbuffer_add_printf(out, "Connection: %s\r\n\r\n",
		keep_alive ? "keep-alive" : "close") < 0)
		return -1;
	if (!head_only && evbuffer_add_buffer(out, bodybuf) == -1)
		return -1;
	return 0;
}

/* The PAC file: FindProxyForURL, DIRECT for what must not loop back. */
static int
onboard_pac(const char *hostport, struct evbuffer *b)
{
	if (evbuffer_add_printf(b,
		"// peephole proxy auto-config\n"
		"function FindProxyForURL(url, host) {\n"
		"\tif (isPlainHostName(host) || host == \"localhost\" ||\n"
		"\t    host == \"::1\" || host == \"[::1]\" ||\n"
		"\t    (/^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(host) &&\n"
		"\t    isInNet(host, \"127.0.0.0\", \"255.0.0.0\")))\n"
		"\t\treturn \"DIRECT\";\n"
		"\treturn \"PROXY %s; DIRECT\";\n"
		"}\n",
		hostport) < 0)
		return -1;
	return 0;
}

static const char onboard_style[] =
    "<style>body{font-family:sans-serif;max-width:46em;margin:1em auto;"
    "padding:0 1em;line-height:1.4}pre{background:#f4f4f4;padding:.6em;"
    "overflow-x:auto}code{background:#f4f4f4}</style>\n";

/* The top of the home page: what this is, downloads, fingerprint. */
static int
onboard_page_intro(const struct onboard *o, struct evbuffer *b)
{
	if (evbuffer_add_printf(b,
		"<!DOCTYPE html>\n<html lang=\"en\"><head>"
		"<meta charset=\"utf-8\">\n<meta name=\"viewport\" "
		"content=\"width=device-width, initial-scale=1\">\n"
		"<title>peephole</title>\n%s</head><body>\n"
		"<h1>peephole</h1>\n"
		"<p>peephole is an intercepting proxy that records which "
		"servers the applications on this device talk to, and what "
		"they say. To read HTTPS it shows certificates signed by "
		"its own root CA: install and trust that CA, on devices you "
		"own only, and remove it when you are done.</p>\n"
		"<h2>The CA certificate</h2>\n<ul>\n"
		"<li><a href=\"/ca.pem\">ca.pem</a> &ndash; PEM: Linux, "
		"Firefox, Android</li>\n"
		"<li><a href=\"/ca.cer\">ca.cer</a> &ndash; DER: Windows, "
		"macOS, iOS, Android</li>\n"
		"<li><a href=\"/ca.p12\">ca.p12</a> &ndash; PKCS#12, "
		"certificate only, empty password: for importers that want "
		"it</li>\n</ul>\n"
		"<p>Its SHA-256 fingerprint, to check what a device shows "
		"(<code>openssl x509 -noout -fingerprint -sha256 -in "
		"ca.pem</code>):<br><code>%s</code></p>\n",
		onboard_style, o->fingerprint) < 0)
		return -1;
	return 0;
}

/* Proxy settings, status, trust steps and the end of the page. */
static int
onboard_page_rest(const struct onboard *o, const char *hostport,
    const char *status_html, struct evbuffer *b)
{
	if (evbuffer_add_printf(b,
		"<h2>Proxy settings</h2>\n"
		"<p>Manual: HTTP and HTTPS proxy <code>%s</code>. "
		"Automatic: <a href=\"/proxy.pac\"><code>http://%s/proxy.pac"
		"</code></a>. <code>peephole setup</code> prints the steps for "
		"macOS, Windows, GNOME, KDE, iOS, Android and environment "
		"variables. Through the proxy this page is also "
		"<code>http://" ONBOARD_HOST "/</code>.</p>\n",
		hostport, hostport) < 0)
		return -1;
	if (status_html != NULL && status_html[0] != '\0' &&
	    evbuffer_add_printf(b, "<h2>Status</h2>\n%s\n", status_html) < 0)
		return -1;
	if (evbuffer_add_printf(b,
		"<h2>Trusting the CA</h2>\n<pre>%s</pre>\n</body></html>\n",
		o->trust_html) < 0)
		return -1;
	return 0;
}

static int
onboard_page_404(const char *path, struct evbuffer *b)
{
	char *epath = onboard_escape(path);
	int n;

	if (epath == NULL)
		return -1;
	n = evbuffer_add_printf(b,
	    "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><title>404 Not Found</title>"
	    "</head><body>\n<h1>404 Not Found</h1>\n"
	    "<p>peephole has no page <code>%s</code>. "
	    "Start at <a href=\"/\">/</a>.</p>\n</body></html>\n",
	    epath);
	free(epath);
	return n < 0 ? -1 : 0;
}

/* Fill b with the body for path; set *status, *ctype, *filename. 0 / -1. */
static int
onboard_body(const struct onboard *o, const char *path, const char *status_html,
    const char *hostport, struct evbuffer *b, int *status, const char **ctype,
    const char **filename)
{
	size_t i;

	*status = 200;
	*filename = NULL;
	for (i = 0; i < ONBOARD_NFILES; i++)
		if (strcmp(path, onboard_files[i].path) == 0) {
			*ctype = onboard_files[i].ctype;
			*filename = onboard_files[i].filename;
			return evbuffer_add(b, o->file[i], o->filelen[i]);
		}
	if (strcmp(path, "/proxy.pac") == 0) {
		*ctype = "application/x-ns-proxy-autoconfig";
		return onboard_pac(hostport, b);
	}
	*ctype = "text/html; charset=utf-8";
	if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
		if (onboard_page_intro(o, b) == -1)
			return -1;
		return onboard_page_rest(o, hostport, status_html, b);
	}
	*status = 404;
	return onboard_page_404(path, b);
}

int
onboard_respond(const struct onboard *o, const char *path,
    const char *status_html, const char *pac_host, int keep_alive,
    int head_only, struct evbuffer *out)
{
	struct evbuffer *body = NULL, *resp = NULL;
	char host[ONBOARD_HOST_MAX + 2], hostport[ONBOARD_HOST_MAX + 8];
	const char *ctype, *filename;
	int status, rc = -1;

	if (path == NULL || path[0] == '\0')
		path = "/";
	if (pac_host == NULL ||
	    onboard_host_norm(pac_host, host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "%s", o->host);
	snprintf(hostport, sizeof(hostport), "%s:%u", host, o->port);
	/* Build aside, so that a failure leaves out as it was. */
	if ((body = evbuffer_new()) == NULL || (resp = evbuffer_new()) == NULL)
		goto fail;
	if (onboard_body(o, path, status_html, hostport, body, &status, &ctype,
		&filename) == -1)
		goto fail;
	if (onboard_reply(resp, status, ctype, filename, body, keep_alive,
		head_only) == -1)
		goto fail;
	if (evbuffer_add_buffer(out, resp) == -1)
		goto fail;
	rc = status;
fail:
	if (body != NULL)
		evbuffer_free(body);
	if (resp != NULL)
		evbuffer_free(resp);
	return rc;
}
