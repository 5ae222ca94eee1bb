/* flowline: see flowline.h. */
#include "proxy/store/flowline.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proxy/store/store.h"

/* Longest URL a line keeps (then "..."), and the longest error or reason:
 * together with the fixed fields they stay under FLOWLINE_MAX. */
#define FLOWLINE_URL_MAX 640
#define FLOWLINE_TEXT_MAX 200

/*
 * Copy s into out (size n), cut to max bytes with "..." when longer, and
 * with control bytes shown as '?' so a line stays one line; ascii: bytes
 * past 0x7f become '?' too (JSON wants valid UTF-8). NULL becomes "-".
 */
static void
flowline_clean(char *out, size_t n, const char *s, size_t max, int ascii)
{
	size_t i, len;

	if (s == NULL)
		s = "-";
	len = strlen(s);
	if (max > n - 1)
		max = n - 1;
	if (len > max)
		len = max - 3;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		out[i] = ch < 0x20 || ch == 0x7f || (ascii && ch > 0x7f)
		    ? '?'
		    : (char)ch;
	}
	if (len < strlen(s)) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

/* The local time of t_us: "06:03:41.123", or with iso the ISO 8601 form
 * "2026-12-06T06:03:41.123+01:00". */
static void
flowline_time(char *out, size_t n, int64_t t_us, int iso)
{
	time_t t = (time_t)(t_us / 1000000);
	int ms = (int)(t_us % 1000000 / 1000);
	struct tm tm;
	char base[32], zone[8];

	if (localtime_r(&t, &tm) == NULL) {
		snprintf(out, n, "-");
		return;
	}
	if (!iso) {
		strftime(base, sizeof(base), "%H:%M:%S", &tm);
		snprintf(out, n, "%s.%03d", base, ms);
		return;
	}
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	if (strftime(zone, sizeof(zone), "%z", &tm) != 5)
		snprintf(zone, sizeof(zone), "+0000");
	snprintf(out, n, "%s.%03d%.3s:%s", base, ms, zone, zone + 3);
}

/* The URL as the client asked for it; default ports left out. */
static void
flowline_url(char *out, size_t n, const struct store_request *r)
{
	char port[16] = "";
	int v6;

	if (r->host == NULL) {
		snprintf(out, n, "%s", r->path != NULL ? r->path : "-");
		return;
	}
	if (r->method != NULL && strcmp(r->method, "CONNECT") == 0) {
		v6 = strchr(r->host, ':') != NULL;
		snprintf(out, n, "%s%s%s:%d", v6 ? "[" : "", r->host,
		    v6 ? "]" : "", r->port);
		return;
	}
	if (r->scheme == NULL ||
	    !((strcmp(r->scheme, "http") == 0 && r->port == 80) ||
		(strcmp(r->scheme, "https") == 0 && r->port == 443)))
		snprintf(port, sizeof(port), ":%d", r->port);
	v6 = strchr(r->host, ':') != NULL;
	snprintf(out, n, "%s://%s%s%s%s%s%s%s", r->scheme ? r->scheme : "http",
	    v6 ? "[" : "", r->host, v6 ? "]" : "", port, r->path ? r->path : "",
	    r->query ? "?" : "", r->query ? r->query : "");
}

/* The stream's target: as asked (CONNECT, SOCKS, original dst), else
 * the server reached. */
static void
flowline_target(char *out, size_t n, const struct store_conn *c)
{
	if (c->listener_target != NULL)
		snprintf(out, n, "%s", c->listener_target);
	else if (c->target_host != NULL)
		snprintf(out, n, "%s:%d", c->target_host, c->target_port);
	else if (c->server_ip != NULL)
		snprintf(out, n, "%s:%d", c->server_ip, c->server_port);
	else
		snprintf(out, n, "-");
}

/* µs as ms; JSON prints it with 12 digits, so 3.2 stays 3.2. */
static double
flowline_ms(int64_t us)
{
	return us < 0 ? -1.0 : (double)us / 1000.0;
}

/* A stream line is due for a connection relayed without reading it. */
static int
flowline_is_stream(const struct store_conn *c)
{
	return c->decision != NULL && strcmp(c->decision, "passthrough") == 0;
}

/* Dump o compactly into buf; 0 when it does not fit (or on ENOMEM). */
static size_t
flowline_dump(json_t *o, char *buf, size_t len)
{
	size_t n =
	    json_dumpb(o, buf, len - 1, JSON_COMPACT | JSON_REAL_PRECISION(12));

	if (n == 0 || n > len - 1)
		return 0;
	buf[n] = '\0';
	return n;
}

static json_t *
flowline_jstr(const char *s)
{
	char ascii[FLOWLINE_URL_MAX + 4];
	json_t *j;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) != NULL)
		return j;
	flowline_clean(ascii, sizeof(ascii), s, sizeof(ascii) - 1, 1);
	return json_string(ascii);
}

/* An exchange's JSON fields into o, the URL and error cut to cut. */
static void
flowline_json_request(json_t *o, const struct store_rec *rec, size_t cut)
{
	const struct store_request *r = &rec->u.req;
	char url[FLOWLINE_URL_MAX + 4], text[FLOWLINE_URL_MAX + 4];
	char full[2 * FLOWLINE_URL_MAX], when[48];

	flowline_url(full, sizeof(full), r);
	flowline_clean(url, sizeof(url), full, cut, 0);
	flowline_time(when, sizeof(when), r->t_start_us, 1);
	json_object_set_new(o, "kind", json_string("exchange"));
	json_object_set_new(
	    o, "id", rec->row_id > 0 ? json_integer(rec->row_id) : json_null());
	json_object_set_new(o, "conn", json_integer(r->conn_id));
	json_object_set_new(o, "seq", json_integer(r->seq));
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(o, "client", flowline_jstr(r->client_ip));
	json_object_set_new(o, "method", flowline_jstr(r->method));
	json_object_set_new(o, "url", flowline_jstr(url));
	json_object_set_new(o, "status", json_integer(r->status));
	json_object_set_new(
	    o, "size", json_integer((json_int_t)r->resp_body.total));
	json_object_set_new(
	    o, "duration_ms", json_real(flowline_ms(r->total_us)));
	if (r->error != NULL) {
		flowline_clean(text, sizeof(text), r->error,
		    cut < FLOWLINE_TEXT_MAX ? cut : FLOWLINE_TEXT_MAX, 0);
		json_object_set_new(o, "error", flowline_jstr(text));
	}
	if (r->stream_id > 0) {
		json_object_set_new(o, "stream_id", json_integer(r->stream_id));
		flowline_clean(text, sizeof(text), r->stream_end,
		    cut < FLOWLINE_TEXT_MAX ? cut : FLOWLINE_TEXT_MAX, 0);
		if (r->stream_end != NULL)
			json_object_set_new(
			    o, "stream_end", flowline_jstr(text));
	}
}

/* An HTTP/2 exchange's text-line suffix: " h2=STREAM" and, when it did not
 * end cleanly, " end=HOW". "" for HTTP/1. */
static void
flowline_h2(char *buf, size_t len, const struct store_request *r)
{
	char end[FLOWLINE_TEXT_MAX + 4];

	buf[0] = '\0';
	if (r->stream_id <= 0)
		return;
	flowline_clean(end, sizeof(end), r->stream_end, FLOWLINE_TEXT_MAX, 0);
	snprintf(buf, len, " h2=%lld%s%s", (long long)r->stream_id,
	    r->stream_end != NULL ? " end=" : "",
	    r->stream_end != NULL ? end : "");
}

/* A stream's (connection's) JSON fields into o. */
static void
flowline_json_conn(json_t *o, const struct store_conn *c, size_t cut)
{
	char text[FLOWLINE_URL_MAX + 4], when[48], target[320];

	flowline_time(when, sizeof(when), c->t_accept_us, 1);
	flowline_target(target, sizeof(target), c);
	flowline_clean(text, sizeof(text), c->decision_reason,
	    cut < FLOWLINE_TEXT_MAX ? cut : FLOWLINE_TEXT_MAX, 0);
	json_object_set_new(o, "kind", json_string("stream"));
	json_object_set_new(o, "id", json_integer(c->id));
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(o, "client", flowline_jstr(c->client_ip));
	json_object_set_new(o, "protocol", flowline_jstr(c->protocol));
	json_object_set_new(o, "target", flowline_jstr(target));
	json_object_set_new(
	    o, "bytes_up", json_integer((json_int_t)c->bytes_from_client));
	json_object_set_new(
	    o, "bytes_down", json_integer((json_int_t)c->bytes_from_server));
	json_object_set_new(o, "duration_ms",
	    json_real(flowline_ms(c->t_close_us - c->t_accept_us)));
	json_object_set_new(o, "reason", flowline_jstr(text));
	json_object_set_new(o, "closed", flowline_jstr(c->close_reason));
}

/* The JSON object of a record; cut: the URL and texts cut shorter. */
static json_t *
flowline_json(const struct store_rec *rec, size_t cut)
{
	char text[FLOWLINE_URL_MAX + 4], when[48];
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if (rec->type == STORE_REC_REQUEST)
		flowline_json_request(o, rec, cut);
	else if (rec->type == STORE_REC_CONN)
		flowline_json_conn(o, &rec->u.conn, cut);
	else {
		const struct store_note *nt = &rec->u.note;
		flowline_time(when, sizeof(when), nt->t_us, 1);
		flowline_clean(text, sizeof(text), nt->text, cut, 0);
		json_object_set_new(o, "kind", json_string("note"));
		json_object_set_new(o, "conn", json_integer(nt->conn_id));
		json_object_set_new(o, "time", json_string(when));
		json_object_set_new(o, "client", flowline_jstr(nt->client_ip));
		json_object_set_new(o, "text", flowline_jstr(text));
	}
	return o;
}

static size_t
flowline_text(const struct store_rec *rec, char *buf, size_t len)
{
	char url[FLOWLINE_URL_MAX + 4], text[FLOWLINE_URL_MAX + 4];
	char when[48], target[320], id[48], client[64];
	int n;

	if (rec->type == STORE_REC_REQUEST) {
		const struct store_request *r = &rec->u.req;
		char full[2 * FLOWLINE_URL_MAX], h2[FLOWLINE_TEXT_MAX + 32];
		flowline_url(full, sizeof(full), r);
		flowline_h2(h2, sizeof(h2), r);
		flowline_clean(url, sizeof(url), full, FLOWLINE_URL_MAX, 0);
		flowline_clean(
		    text, sizeof(text), r->error, FLOWLINE_TEXT_MAX, 0);
		flowline_clean(client, sizeof(client), r->client_ip, 60, 0);
		flowline_time(when, sizeof(when), r->t_start_us, 0);
		if (rec->row_id > 0)
			snprintf(
			    id, sizeof(id), "#%lld", (long long)rec->row_id);
		else
			snprintf(id, sizeof(id), "c%lld#%d",
			    (long long)r->conn_id, r->seq);
		n = snprintf(buf, len, "%s %s %s %s %s %d %llu %.1fms%s%s%s",
		    id, when, client, r->method ? r->method : "-", url,
		    r->status, (unsigned long long)r->resp_body.total,
		    flowline_ms(r->total_us), h2, r->error ? " error=" : "",
		    r->error ? text : "");
	} else if (rec->type == STORE_REC_CONN) {
		const struct store_conn *c = &rec->u.conn;
		flowline_time(when, sizeof(when), c->t_accept_us, 0);
		flowline_target(target, sizeof(target), c);
		flowline_clean(url, sizeof(url), target, 300, 0);
		flowline_clean(text, sizeof(text), c->decision_reason,
		    FLOWLINE_TEXT_MAX, 0);
		flowline_clean(client, sizeof(client), c->client_ip, 60, 0);
		n = snprintf(buf, len,
		    "c%lld %s %s stream %s %s up=%llu down=%llu %.1fms "
		    "passthrough: %s",
		    (long long)c->id, when, client,
		    c->protocol ? c->protocol : "-", url,
		    (unsigned long long)c->bytes_from_client,
		    (unsigned long long)c->bytes_from_server,
		    flowline_ms(c->t_close_us - c->t_accept_us), text);
	} else {
		const struct store_note *nt = &rec->u.note;
		flowline_time(when, sizeof(when), nt->t_us, 0);
		flowline_clean(
		    text, sizeof(text), nt->text, FLOWLINE_URL_MAX, 0);
		flowline_clean(client, sizeof(client), nt->client_ip, 60, 0);
		n = snprintf(buf, len, "c%lld %s %s %s", (long long)nt->conn_id,
		    when, client, text);
	}
	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}

size_t
flowline_format(const struct store_rec *rec, int json, char *buf, size_t len)
{
	static const size_t cuts[] = {FLOWLINE_URL_MAX, 200, 48};
	size_t i, n = 0;
	json_t *o;

	if (len == 0)
		return 0;
	buf[0] = '\0';
	if (rec->type == STORE_REC_CONN && !flowline_is_stream(&rec->u.conn))
		return 0;
	if (rec->type != STORE_REC_REQUEST && rec->type != STORE_REC_CONN &&
	    rec->type != STORE_REC_NOTE)
		return 0;
	if (!json)
		return flowline_text(rec, buf, len);
	/* escapes can lengthen a JSON line: cut harder until it fits */
	for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]) && n == 0; i++) {
		if ((o = flowline_json(rec, cuts[i])) == NULL)
			return 0;
		n = flowline_dump(o, buf, len);
		json_decref(o);
	}
	return n;
}

void
flowline_print(const struct store_rec *rec, void *arg)
{
	const int *format = arg;
	char line[FLOWLINE_MAX];
	int json = format != NULL && *format != 0;

	if (flowline_format(rec, json, line, sizeof(line)) > 0) {
		fputs(line, stdout);
		fputc('\n', stdout);
	}
}
