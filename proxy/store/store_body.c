/*
 * store_body: captured bodies, stored once in the bodies table keyed by
 * their SHA-256, and the writer's cache of recent bodies (store_seen_*)
 * that spares hashing a body seen again. Writer thread.
 */
#include "proxy/store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/log.h"

/* Forget remembered body i; frees its bytes if the cache owns them. */
static void
store_seen_drop(struct store *st, size_t i)
{
	struct store_seen *e = &st->seen[i];

	if (e->owned)
		free(e->data);
	st->seen_bytes -= e->len;
	memmove(e, e + 1, (st->nseen - i - 1) * sizeof(*e));
	st->nseen--;
}

/* Copy the digest of a remembered body equal to b into hex and make it the
 * newest. 1 when found, else 0. Writer thread. */
static int
store_seen_find(struct store *st, const struct store_body *b, char hex[65])
{
	struct store_seen e;
	size_t i;

	for (i = 0; i < st->nseen; i++) {
		if (st->seen[i].len != b->len ||
		    (st->seen[i].data != b->data &&
			memcmp(st->seen[i].data, b->data, b->len) != 0))
			continue;
		e = st->seen[i];
		memcpy(hex, e.hex, sizeof(e.hex));
		memmove(&st->seen[1], &st->seen[0], i * sizeof(e));
		st->seen[0] = e;
		return 1;
	}
	return 0;
}

/* Remember b (not owned yet: store_seen_adopt takes its bytes when its
 * record is freed) with its digest, as the newest, evicting the oldest
 * past the bounds. Writer thread. */
static void
store_seen_add(struct store *st, const struct store_body *b, const char *hex)
{
	struct store_seen *e;

	if (b->len > STORE_SEEN_BYTES / 2)
		return;
	while (st->nseen > 0 &&
	    (st->nseen == STORE_SEEN_MAX ||
		st->seen_bytes + b->len > STORE_SEEN_BYTES))
		store_seen_drop(st, st->nseen - 1);
	memmove(&st->seen[1], &st->seen[0], st->nseen * sizeof(*e));
	e = &st->seen[0];
	e->data = b->data;
	e->len = b->len;
	e->owned = 0;
	memcpy(e->hex, hex, sizeof(e->hex));
	st->nseen++;
	st->seen_bytes += b->len;
}

/* A record is about to be freed: remembered bodies that point into it
 * take its buffer (the record lets go of it). Writer thread. */
void
store_seen_adopt(struct store *st, struct store_body *b)
{
	size_t i;

	if (b->data == NULL)
		return;
	for (i = 0; i < st->nseen; i++)
		if (!st->seen[i].owned && st->seen[i].data == b->data) {
			st->seen[i].owned = 1;
			b->data = NULL;
			return;
		}
}

/* After a batch's records are freed nothing may point into them. */
void
store_seen_settle(struct store *st)
{
	size_t i = 0;

	while (i < st->nseen)
		if (!st->seen[i].owned)
			store_seen_drop(st, i);
		else
			i++;
}

/* SHA-256 of b as lowercase hex. 0 / -1 (logged). Writer thread. */
static int
store_sha256_hex(struct store *st, const struct store_body *b, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	if (st->md_ctx == NULL && (st->md_ctx = EVP_MD_CTX_new()) == NULL)
		goto fail;
	if (st->sha256 == NULL &&
	    (st->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		goto fail;
	if (!EVP_DigestInit_ex(st->md_ctx, st->sha256, NULL) ||
	    !EVP_DigestUpdate(st->md_ctx, b->data, b->len) ||
	    !EVP_DigestFinal_ex(st->md_ctx, md, &mdlen) || mdlen != 32)
		goto fail;
	for (i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0xf];
	}
	hex[64] = '\0';
	return 0;
fail:
	log_ssl_warnx("store: sha256 failed");
	return -1;
}

/*
 * Store the captured bytes of b once, keyed by their SHA-256, and put the
 * lowercase hex digest in hex. hex is "" when nothing was captured. 0 / -1.
 */
int
store_put_body(struct store *st, const struct store_body *b, char hex[65])
{
	sqlite3_stmt *s = st->ins_body;

	hex[0] = '\0';
	if (b->data == NULL || b->len == 0)
		return 0;
	if (!store_seen_find(st, b, hex)) {
		if (store_sha256_hex(st, b, hex) == -1)
			return -1;
		store_seen_add(st, b, hex);
	}
	sqlite3_bind_text(s, 1, hex, 64, SQLITE_STATIC);
	store_bind_u64(s, 2, b->len);
	sqlite3_bind_blob64(s, 3, b->data, b->len, SQLITE_STATIC);
	if (store_step(s) != SQLITE_DONE) {
		log_warnx("store: cannot write body %s (%zu bytes): %s", hex,
		    b->len, sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* Forget every remembered body and the digest context. */
void
store_body_free(struct store *st)
{
	while (st->nseen > 0)
		store_seen_drop(st, st->nseen - 1);
	EVP_MD_CTX_free(st->md_ctx);
	EVP_MD_free(st->sha256);
}
