/* requrl: see requrl.h. */
#include "proxy/store/requrl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
requrl_default_port(const char *scheme, int port)
{
	return (strcmp(scheme, "http") == 0 && port == 80) ||
	    (strcmp(scheme, "https") == 0 && port == 443);
}

char *
requrl_format(const char *scheme, const char *method, const char *host,
    int port, const char *path, const char *query)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp;
	int v6;

	if (host == NULL)
		host = "";
	if (scheme == NULL || scheme[0] == '\0')
		scheme = "http";
	v6 = strchr(host, ':') != NULL;
	if ((fp = open_memstream(&buf, &len)) == NULL)
		return NULL;
	if (method != NULL && strcmp(method, "CONNECT") == 0)
		fprintf(fp, v6 ? "[%s]:%d" : "%s:%d", host, port);
	else {
		fprintf(fp, v6 ? "%s://[%s]" : "%s://%s", scheme, host);
		if (port > 0 && !requrl_default_port(scheme, port))
			fprintf(fp, ":%d", port);
		fputs(path != NULL && path[0] != '\0' ? path : "/", fp);
		if (query != NULL)
			fprintf(fp, "?%s", query);
	}
	if (fclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
