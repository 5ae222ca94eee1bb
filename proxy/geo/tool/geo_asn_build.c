/*
 * geo_asn_build: the ASN range file (proxy/geo/asn.h) from the
 * @ip-location-db/asn CSVs, for `make deps`:
 *
 *   geo_asn_build OUT DATE CSV...
 */
#include <stdio.h>

#include "proxy/geo/asn.h"

int
main(int argc, char **argv)
{
	char err[512];

	if (argc < 4) {
		fprintf(stderr, "usage: geo_asn_build OUT DATE CSV...\n");
		return 2;
	}
	if (asn_build(argv[1], (const char *const *)argv + 3, argc - 3, argv[2],
		err, sizeof(err)) == -1) {
		fprintf(stderr, "geo_asn_build: %s\n", err);
		return 1;
	}
	return 0;
}
