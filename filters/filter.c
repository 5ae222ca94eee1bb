/*
 * filter: see filter.h. A recursive-descent parser over a small token set
 * (the language is ours; the regexes are PCRE2's) builds a tree that
 * filter_match walks.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "filters/filter.h"

#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FILTER_DEPTH_MAX 100
#define FILTER_TOKEN_MAX 4096

enum filter_op {
	FILTER_AND,
	FILTER_OR,
	FILTER_NOT,
	FILTER_TEST /* one ~x */
};

/* What a ~x looks at. */
enum filter_field {
	FILTER_F_DOMAIN,
	FILTER_F_URL,
	FILTER_F_METHOD,
	FILTER_F_CODE,
	FILTER_F_TYPE,
	FILTER_F_TYPE_REQ,
	FILTER_F_TYPE_RESP,
	FILTER_F_HEADER,
	FILTER_F_HEADER_REQ,
	FILTER_F_HEADER_RESP,
	FILTER_F_BODY,
	FILTER_F_BODY_REQ,
	FILTER_F_BODY_RESP,
	FILTER_F_RESPONSE,    /* ~s */
	FILTER_F_NO_RESPONSE, /* ~q */
	FILTER_F_ERROR,       /* ~e */
	FILTER_F_PROTO,
	FILTER_F_WEBSOCKET,
	FILTER_F_HTTP2,
	FILTER_F_ALL
};

enum filter_arg {
	FILTER_ARG_NONE,
	FILTER_ARG_REGEX,
	FILTER_ARG_CODE,
	FILTER_ARG_WORD
};

static const struct filter_name {
	const char *name;
	enum filter_field field;
	enum filter_arg arg;
} filter_names[] = {
    {"d", FILTER_F_DOMAIN, FILTER_ARG_REGEX},
    {"u", FILTER_F_URL, FILTER_ARG_REGEX},
    {"m", FILTER_F_METHOD, FILTER_ARG_REGEX},
    {"c", FILTER_F_CODE, FILTER_ARG_CODE},
    {"t", FILTER_F_TYPE, FILTER_ARG_REGEX},
    {"tq", FILTER_F_TYPE_REQ, FILTER_ARG_REGEX},
    {"ts", FILTER_F_TYPE_RESP, FILTER_ARG_REGEX},
    {"h", FILTER_F_HEADER, FILTER_ARG_REGEX},
    {"hq", FILTER_F_HEADER_REQ, FILTER_ARG_REGEX},
    {"hs", FILTER_F_HEADER_RESP, FILTER_ARG_REGEX},
    {"b", FILTER_F_BODY, FILTER_ARG_REGEX},
    {"bq", FILTER_F_BODY_REQ, FILTER_ARG_REGEX},
    {"bs", FILTER_F_BODY_RESP, FILTER_ARG_REGEX},
    {"s", FILTER_F_RESPONSE, FILTER_ARG_NONE},
    {"q", FILTER_F_NO_RESPONSE, FILTER_ARG_NONE},
    {"e", FILTER_F_ERROR, FILTER_ARG_NONE},
    {"proto", FILTER_F_PROTO, FILTER_ARG_WORD},
    {"all", FILTER_F_ALL, FILTER_ARG_NONE},
    {"websocket", FILTER_F_WEBSOCKET, FILTER_ARG_NONE},
    {"ws", FILTER_F_WEBSOCKET, FILTER_ARG_NONE},
    {"h2", FILTER_F_HTTP2, FILTER_ARG_NONE},
    {"http2", FILTER_F_HTTP2, FILTER_ARG_NONE},
};

struct filter {
	enum filter_op op;
	enum filter_field field;
	struct filter *a, *b; /* operands of & | ! */
	pcre2_code *re;
	int code;
	char *word;
	int needs_body; /* this node or one below uses a body */
};

/* ---- the parser ---- */

enum filter_tok {
	TOK_END,
	TOK_LPAREN,
	TOK_RPAREN,
	TOK_NOT,
	TOK_AND,
	TOK_OR,
	TOK_WORD
};

struct filter_parser {
	const char *s;
	size_t pos;          /* next byte to read */
	enum filter_tok tok; /* current token */
	size_t tok_pos;      /* where it starts */
	char word[FILTER_TOKEN_MAX];
	int quoted; /* the word was quoted */
	int depth;
	char *err;
	size_t errlen;
	size_t errpos;
	int failed;
};

static void filter_fail(struct filter_parser *p, size_t pos, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static void
filter_fail(struct filter_parser *p, size_t pos, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return;
	p->failed = 1;
	p->errpos = pos;
	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
}

/* The quoted value starting at p->pos (at its quote) into p->word. */
static void
filter_next_quoted(struct filter_parser *p)
{
	const char *s = p->s;
	size_t n = 0;
	char q = s[p->pos++];

	while (s[p->pos] != q) {
		if (s[p->pos] == '\0') {
			filter_fail(p, p->tok_pos, "unterminated %c", q);
			p->tok = TOK_END;
			return;
		}
		/* a backslash escapes the quote (and itself); other escapes
		 * reach the regex as they are */
		if (s[p->pos] == '\\' &&
		    (s[p->pos + 1] == q || s[p->pos + 1] == '\\'))
			p->pos++;
		if (n + 1 >= sizeof(p->word)) {
			filter_fail(p, p->tok_pos, "value too long");
			p->tok = TOK_END;
			return;
		}
		p->word[n++] = s[p->pos++];
	}
	p->pos++;
	p->word[n] = '\0';
	p->quoted = 1;
	p->tok = TOK_WORD;
}

/* The bare word at p->pos into p->word: it ends at white space or an
 * operator. */
static void
filter_next_bare(struct filter_parser *p)
{
	const char *s = p->s;
	size_t n = 0;

	while (s[p->pos] != '\0' && !isspace((unsigned char)s[p->pos]) &&
	    strchr("()&|", s[p->pos]) == NULL) {
		if (n + 1 >= sizeof(p->word)) {
			filter_fail(p, p->tok_pos, "value too long");
			p->tok = TOK_END;
			return;
		}
		p->word[n++] = s[p->pos++];
	}
	p->word[n] = '\0';
	p->tok = TOK_WORD;
}

/* Read the next token into p->tok (and p->word for words). */
static void
filter_next(struct filter_parser *p)
{
	static const char ops[] = "()!&|";
	static const enum filter_tok op_toks[] = {
	    TOK_LPAREN, TOK_RPAREN, TOK_NOT, TOK_AND, TOK_OR};
	const char *op;
	char c;

	while (isspace((unsigned char)p->s[p->pos]))
		p->pos++;
	p->tok_pos = p->pos;
	p->quoted = 0;
	c = p->s[p->pos];
	if (c == '\0')
		p->tok = TOK_END;
	else if ((op = strchr(ops, c)) != NULL) {
		p->tok = op_toks[op - ops];
		p->pos++;
	} else if (c == '"' || c == '\'')
		filter_next_quoted(p);
	else
		filter_next_bare(p);
}

static struct filter *
filter_node(struct filter_parser *p, enum filter_op op)
{
	struct filter *f = calloc(1, sizeof(*f));

	if (f == NULL)
		filter_fail(p, p->tok_pos, "out of memory");
	else
		f->op = op;
	return f;
}

static struct filter *
filter_regex(struct filter_parser *p, struct filter *f, size_t at)
{
	int ecode;
	PCRE2_SIZE eoff;

	f->re = pcre2_compile((PCRE2_SPTR)p->word, PCRE2_ZERO_TERMINATED,
	    PCRE2_CASELESS | PCRE2_MATCH_INVALID_UTF, &ecode, &eoff, NULL);
	if (f->re == NULL) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(ecode, msg, sizeof(msg));
		/* point into the regex (past the opening quote if any) */
		filter_fail(p, at + (p->quoted ? 1 : 0) + eoff,
		    "bad regex '%s': %s", p->word, (const char *)msg);
		filter_free(f);
		return NULL;
	}
	return f;
}

/* ~name [value], the current token being the word "~name". */
static struct filter *
filter_test(struct filter_parser *p)
{
	const struct filter_name *n = NULL;
	struct filter *f;
	size_t at = p->tok_pos;
	char *end;
	long code;

	for (size_t i = 0; i < sizeof(filter_names) / sizeof(filter_names[0]);
	     i++)
		if (strcmp(p->word + 1, filter_names[i].name) == 0)
			n = &filter_names[i];
	if (n == NULL) {
		filter_fail(p, at, "unknown filter %s", p->word);
		return NULL;
	}
	if ((f = filter_node(p, FILTER_TEST)) == NULL)
		return NULL;
	f->field = n->field;
	f->needs_body = n->field == FILTER_F_BODY ||
	    n->field == FILTER_F_BODY_REQ || n->field == FILTER_F_BODY_RESP;
	filter_next(p);
	if (n->arg == FILTER_ARG_NONE)
		return f;
	if (p->tok != TOK_WORD) {
		filter_fail(p, p->tok_pos, "~%s needs a value", n->name);
		filter_free(f);
		return NULL;
	}
	at = p->tok_pos;
	switch (n->arg) {
	case FILTER_ARG_CODE:
		errno = 0;
		code = strtol(p->word, &end, 10);
		if (errno != 0 || *end != '\0' || end == p->word || code < 0 ||
		    code > 999) {
			filter_fail(
			    p, at, "~c needs a status code, got '%s'", p->word);
			filter_free(f);
			return NULL;
		}
		f->code = (int)code;
		break;
	case FILTER_ARG_WORD:
		if ((f->word = strdup(p->word)) == NULL) {
			filter_fail(p, at, "out of memory");
			filter_free(f);
			return NULL;
		}
		break;
	default:
		if (filter_regex(p, f, at) == NULL)
			return NULL;
	}
	filter_next(p);
	return f;
}

static struct filter *filter_or(struct filter_parser *p);
static struct filter *filter_unary(struct filter_parser *p);

/* "!" and the unary expression it negates. NULL on failure (p says). */
static struct filter *
filter_not(struct filter_parser *p)
{
	struct filter *f, *inner;

	filter_next(p);
	if ((inner = filter_unary(p)) == NULL)
		return NULL;
	if ((f = filter_node(p, FILTER_NOT)) == NULL) {
		filter_free(inner);
		return NULL;
	}
	f->a = inner;
	f->needs_body = inner->needs_body;
	return f;
}

/* A bare value (at at) is a URL regex, as in mitmproxy. NULL on failure
 * (p says). */
static struct filter *
filter_url(struct filter_parser *p, size_t at)
{
	struct filter *f;

	if ((f = filter_node(p, FILTER_TEST)) == NULL)
		return NULL;
	f->field = FILTER_F_URL;
	if (filter_regex(p, f, at) == NULL)
		return NULL;
	filter_next(p);
	return f;
}

static struct filter *
filter_unary(struct filter_parser *p)
{
	struct filter *f;
	size_t at = p->tok_pos;

	if (++p->depth > FILTER_DEPTH_MAX) {
		filter_fail(
		    p, at, "nested more than %d deep", FILTER_DEPTH_MAX);
		return NULL;
	}
	switch (p->tok) {
	case TOK_NOT:
		if ((f = filter_not(p)) == NULL)
			return NULL;
		break;
	case TOK_LPAREN:
		filter_next(p);
		if ((f = filter_or(p)) == NULL)
			return NULL;
		if (p->tok != TOK_RPAREN) {
			filter_fail(p, p->tok_pos,
			    "expected ')' to close the '(' at %zu", at);
			filter_free(f);
			return NULL;
		}
		filter_next(p);
		break;
	case TOK_WORD:
		if (!p->quoted && p->word[0] == '~') {
			f = filter_test(p);
			break;
		}
		if ((f = filter_url(p, at)) == NULL)
			return NULL;
		break;
	case TOK_RPAREN:
		filter_fail(p, at, "unexpected ')'");
		return NULL;
	case TOK_END:
		filter_fail(
		    p, at, "expected an expression%s", at > 0 ? " here" : "");
		return NULL;
	default:
		filter_fail(
		    p, at, "expected an expression before '%c'", p->s[at]);
		return NULL;
	}
	p->depth--;
	return f;
}

static struct filter *
filter_binary(struct filter_parser *p, enum filter_op op,
    struct filter *(*operand)(struct filter_parser *))
{
	struct filter *f, *rhs, *n;

	if ((f = operand(p)) == NULL)
		return NULL;
	for (;;) {
		size_t at = p->tok_pos;
		if (op == FILTER_OR && p->tok != TOK_OR)
			break;
		if (op == FILTER_AND && p->tok != TOK_AND &&
		    p->tok != TOK_NOT && p->tok != TOK_LPAREN &&
		    p->tok != TOK_WORD)
			break;
		if (p->tok == TOK_OR || p->tok == TOK_AND) {
			filter_next(p);
			if (p->tok == TOK_END || p->tok == TOK_RPAREN ||
			    p->tok == TOK_AND || p->tok == TOK_OR) {
				filter_fail(p, p->tok_pos,
				    "expected an expression after '%c'",
				    p->s[at]);
				filter_free(f);
				return NULL;
			}
		}
		if ((rhs = operand(p)) == NULL) {
			filter_free(f);
			return NULL;
		}
		if ((n = filter_node(p, op)) == NULL) {
			filter_free(f);
			filter_free(rhs);
			return NULL;
		}
		n->a = f;
		n->b = rhs;
		n->needs_body = f->needs_body || rhs->needs_body;
		f = n;
	}
	return f;
}

static struct filter *
filter_and(struct filter_parser *p)
{
	return filter_binary(p, FILTER_AND, filter_unary);
}

static struct filter *
filter_or(struct filter_parser *p)
{
	return filter_binary(p, FILTER_OR, filter_and);
}

struct filter *
filter_compile(const char *expr, char *err, size_t errlen, size_t *errpos)
{
	struct filter_parser *p = calloc(1, sizeof(*p));
	struct filter *f = NULL;

	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->s = expr;
	p->err = err;
	p->errlen = errlen;
	filter_next(p);
	if (!p->failed)
		f = filter_or(p);
	if (f != NULL && !p->failed && p->tok != TOK_END) {
		filter_fail(p, p->tok_pos,
		    p->tok == TOK_RPAREN ? "unexpected ')'"
					 : "unexpected text");
	}
	if (p->failed) {
		filter_free(f);
		f = NULL;
		if (errpos != NULL)
			*errpos = p->errpos;
	}
	free(p);
	return f;
}

void
filter_free(struct filter *f)
{
	if (f == NULL)
		return;
	filter_free(f->a);
	filter_free(f->b);
	pcre2_code_free(f->re);
	free(f->word);
	free(f);
}

int
filter_needs_body(const struct filter *f)
{
	return f->needs_body;
}

/* ---- matching ---- */

static int
filter_re(const pcre2_code *re, const void *s, size_t len)
{
	pcre2_match_data *md;
	int rc;

	if (s == NULL)
		return 0;
	if ((md = pcre2_match_data_create_from_pattern(re, NULL)) == NULL)
		return 0;
	rc = pcre2_match(re, s, len, 0, 0, md, NULL);
	pcre2_match_data_free(md);
	return rc >= 0;
}

static int
filter_re_str(const pcre2_code *re, const char *s)
{
	return s != NULL && filter_re(re, s, strlen(s));
}

/* Each "Name: value" line of a stored header block on its own. */
static int
filter_re_lines(const pcre2_code *re, const char *h)
{
	while (h != NULL && *h != '\0') {
		size_t n = strcspn(h, "\r\n");
		if (n > 0 && filter_re(re, h, n))
			return 1;
		h += n;
		h += strspn(h, "\r\n");
	}
	return 0;
}

static int
filter_re_body(const pcre2_code *re, const struct filter_req *r, int which)
{
	const void *data;
	size_t len;

	if (r->body == NULL || r->body(r->body_arg, which, &data, &len) != 0)
		return 0;
	return filter_re(re, data, len);
}

/* Any WebSocket message sent in direction dir (-1: either) matches. */
static int
filter_re_messages(const pcre2_code *re, const struct filter_req *r, int dir)
{
	const void *data;
	size_t i, len;
	int d;

	if (r->message == NULL)
		return 0;
	for (i = 0; r->message(r->body_arg, i, &d, &data, &len) == 0; i++)
		if ((dir < 0 || d == dir) && filter_re(re, data, len))
			return 1;
	return 0;
}

/* 1 if the token list value (n bytes) names tok, case-insensitively. */
static int
filter_list_has(const char *v, size_t n, const char *tok)
{
	size_t k = strlen(tok), i = 0, j;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		for (j = i; j < n && v[j] != ','; j++)
			;
		while (j > i && (v[j - 1] == ' ' || v[j - 1] == '\t'))
			j--;
		if (j - i == k && strncasecmp(v + i, tok, k) == 0)
			return 1;
		i = j + 1;
	}
	return 0;
}

/* A WebSocket: messages logged, or a 101 answer upgrading to websocket. */
static int
filter_is_websocket(const struct filter_req *r)
{
	const char *h = r->resp_headers;

	if (r->ws_messages)
		return 1;
	if (r->status != 101)
		return 0;
	while (h != NULL && *h != '\0') {
		size_t n = strcspn(h, "\r\n");
		if (n > 8 && strncasecmp(h, "upgrade:", 8) == 0 &&
		    filter_list_has(h + 8, n - 8, "websocket"))
			return 1;
		h += n;
		h += strspn(h, "\r\n");
	}
	return 0;
}

static int
filter_word_is(const char *word, const char *s)
{
	return s != NULL && strcasecmp(word, s) == 0;
}

static int
filter_test_match(const struct filter *f, const struct filter_req *r)
{
	switch (f->field) {
	case FILTER_F_DOMAIN:
		return filter_re_str(f->re, r->host);
	case FILTER_F_URL:
		return filter_re_str(f->re, r->url);
	case FILTER_F_METHOD:
		return filter_re_str(f->re, r->method);
	case FILTER_F_CODE:
		return r->status != 0 && r->status == f->code;
	case FILTER_F_TYPE:
		return filter_re_str(f->re, r->req_content_type) ||
		    filter_re_str(f->re, r->resp_content_type);
	case FILTER_F_TYPE_REQ:
		return filter_re_str(f->re, r->req_content_type);
	case FILTER_F_TYPE_RESP:
		return filter_re_str(f->re, r->resp_content_type);
	case FILTER_F_HEADER:
		return filter_re_lines(f->re, r->req_headers) ||
		    filter_re_lines(f->re, r->resp_headers);
	case FILTER_F_HEADER_REQ:
		return filter_re_lines(f->re, r->req_headers);
	case FILTER_F_HEADER_RESP:
		return filter_re_lines(f->re, r->resp_headers);
	case FILTER_F_BODY:
		return filter_re_body(f->re, r, 0) ||
		    filter_re_body(f->re, r, 1) ||
		    filter_re_messages(f->re, r, -1);
	case FILTER_F_BODY_REQ:
		return filter_re_body(f->re, r, 0) ||
		    filter_re_messages(f->re, r, 0);
	case FILTER_F_BODY_RESP:
		return filter_re_body(f->re, r, 1) ||
		    filter_re_messages(f->re, r, 1);
	case FILTER_F_RESPONSE:
		return r->status != 0;
	case FILTER_F_NO_RESPONSE:
		return r->status == 0;
	case FILTER_F_ERROR:
		return r->error != NULL && r->error[0] != '\0';
	case FILTER_F_PROTO:
		return filter_word_is(f->word, r->label) ||
		    filter_word_is(f->word, r->protocol) ||
		    filter_word_is(f->word, r->scheme);
	case FILTER_F_WEBSOCKET:
		return filter_is_websocket(r);
	case FILTER_F_HTTP2:
		return r->http2;
	case FILTER_F_ALL:
		return 1;
	}
	return 0;
}

int
filter_match(const struct filter *f, const struct filter_req *r)
{
	switch (f->op) {
	case FILTER_AND:
		return filter_match(f->a, r) && filter_match(f->b, r);
	case FILTER_OR:
		return filter_match(f->a, r) || filter_match(f->b, r);
	case FILTER_NOT:
		return !filter_match(f->a, r);
	case FILTER_TEST:
		return filter_test_match(f, r);
	}
	return 0;
}
