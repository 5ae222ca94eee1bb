/*
 * web_assets: the web UI's static files, embedded into the binary at build
 * time (proxy/web/embed.sh writes the table into $(BUILD)/gen/): our own
 * files from proxy/web/ui/ and the npm packages' under /vendor/, as
 * web-spec.md's "Static files" lists them. Read-only data: any thread may
 * use it.
 */
#ifndef PEEPHOLE_WEB_ASSETS_H
#define PEEPHOLE_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *path; /* URL path: "/", "/app.js", "/vendor/preact.mjs" */
	const char *type; /* Content-Type, with "; charset=utf-8" for text */
	const char *etag; /* strong ETag, quotes included: "\"0123abcd...\"" */
	const unsigned char *data; /* len bytes, then a NUL not counted */
	size_t len;
};

/*
 * The asset served at path (the URL path alone: no query, already
 * percent-decoded), or NULL if there is none.
 */
const struct web_asset *web_asset_find(const char *path);

/* How many assets there are, and the i-th in path order (NULL past the
 * end): for listing them, and for tests. */
size_t web_asset_count(void);
const struct web_asset *web_asset_at(size_t i);

#endif
