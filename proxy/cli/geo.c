/*
 * geo: `peephole geo IP...`, the country, autonomous system and
 * organisation of addresses from the offline data (proxy/geo/geo.h), and
 * `peephole geo update --from DIR` (proxy/cli/geo_update.c).
 */
#include "proxy/cli/cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/ca.h"
#include "proxy/cli/args.h"
#include "proxy/cli/geo_update.h"
#include "proxy/cli/output.h"
#include "proxy/geo/geo.h"

#define GEO_CMD "geo"

struct geo_opts {
	const char *dir; /* --dir: this data directory only */
	enum out_format fmt;
};

/* The attribution CC BY 4.0 asks for; also in the README. */
#define GEO_ATTRIBUTION                                                        \
	"Data: country from ip-location-db's geo-whois-asn-country\n"          \
	"(https://github.com/sapics/ip-location-db), CC0 1.0, built from\n"    \
	"RIR whois and GeoFeed data (NRO statistics, CC BY 4.0, nro.net).\n"   \
	"ASN data: ip-location-db "                                            \
	"(https://github.com/sapics/ip-location-db),\n"                        \
	"CC BY 4.0, built from RouteViews (routeviews.org), the five RIRs'\n"  \
	"delegations (NRO, nro.net) and DB-IP's IP to ASN Lite\n"              \
	"(IP Geolocation by DB-IP, https://db-ip.com), all CC BY 4.0;\n"       \
	"converted by peephole into its range file (asn.bin).\n"

static const char geo_help[] =
    "usage: peephole geo [--json | --csv] [--dir DIR] IP...\n"
    "       peephole geo update --from DIR [--home DIR]\n"
    "\n"
    "Where each address is: its country (ISO 3166 code), autonomous\n"
    "system and organisation, offline, from the data `make deps` builds\n"
    "into build/geo. Addresses that are not on the public Internet say\n"
    "what they are instead (private, loopback, link-local, cgnat,\n"
    "documentation, multicast, unspecified, reserved). The last line (and\n"
    "\"source\" in JSON) names the data files that answered and their date.\n"
    "\n"
    "The data directory is the first of: --dir; $PEEPHOLE_GEO_DIR; the\n"
    "peephole home's geo/ ($PEEPHOLE_HOME or ~/.peephole; what `geo update`\n"
    "writes); beside the binary geo/, ../geo/ and build/geo/.\n"
    "\n"
    "  --json      print a JSON array: ip, country, asn, org, scope, source\n"
    "  --csv       print CSV with a header row\n"
    "  --dir DIR   read the data in DIR only\n"
    "  --help      print this help\n"
    "\n"
    "`geo update --from DIR` installs newer data into the peephole home's\n"
    "geo/: DIR holds country.mmdb and/or asn.bin (a copy of a build/geo),\n"
    "or ip-location-db's release files (geo-whois-asn-country.mmdb,\n"
    "asn-ipv4.csv and asn-ipv6.csv, converted here). The new files must\n"
    "open and answer a lookup of " GEO_PROBE_IP " or nothing is replaced;\n"
    "they replace the old ones in one rename, and a file DIR lacks is kept.\n"
    "\n"
    "  --from DIR  the new data\n"
    "  --home DIR  the peephole home (default $PEEPHOLE_HOME, else\n"
    "              ~/.peephole)\n"
    "\n" GEO_ATTRIBUTION;

static int
geo_opt(int ch, char *arg, void *opts)
{
	struct geo_opts *o = opts;

	switch (ch) {
	case 'D':
		o->dir = arg;
		return 0;
	case 'j':
	case 'c':
		return args_format(GEO_CMD, ch, &o->fmt);
	default:
		return ARGS_UNKNOWN;
	}
}

static int
geo_parse(int argc, char **argv, struct geo_opts *o)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'D'},
	    {"json", no_argument, NULL, 'j'},
	    {"csv", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    GEO_CMD, geo_help, NULL, longopts, geo_opt};
	int rc;

	memset(o, 0, sizeof(*o));
	o->fmt = OUT_TEXT;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK)
		return rc;
	if (optind >= argc)
		return args_usage(GEO_CMD, "no address given");
	for (int i = optind; i < argc; i++) {
		struct geo_info gi;

		if (geo_lookup(NULL, argv[i], &gi) == -1)
			return args_usage(
			    GEO_CMD, "not an IP address: '%s'", argv[i]);
	}
	return CLI_OK;
}

static json_t *
geo_json_one(const char *ip, const struct geo_info *gi, const char *src)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "ip", json_string(ip));
	out_json_geo(o, gi);
	json_object_set_new(
	    o, "source", src[0] && !gi->scope ? json_string(src) : json_null());
	return o;
}

static int
geo_print_json(const struct geo *g, int n, char **ips, const char *src)
{
	json_t *arr = json_array();
	struct geo_info gi;
	int rc;

	if (arr == NULL)
		return -1;
	for (int i = 0; i < n; i++) {
		(void)geo_lookup(g, ips[i], &gi);
		json_array_append_new(arr, geo_json_one(ips[i], &gi, src));
	}
	rc = json_dumpf(arr, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(arr);
	return rc;
}

static int
geo_print_table(const struct geo *g, int n, char **ips, const char *src,
    enum out_format fmt)
{
	static const char *const headers[] = {
	    "ip", "country", "asn", "org", "scope"};
	struct out_table *t = out_table_new(5, headers);
	struct geo_info gi;
	char asn[16];

	if (t == NULL)
		return -1;
	for (int i = 0; i < n; i++) {
		const char *cells[5];

		(void)geo_lookup(g, ips[i], &gi);
		if (gi.asn == 0)
			asn[0] = '\0';
		else
			snprintf(asn, sizeof(asn),
			    fmt == OUT_CSV ? "%u" : "AS%u", gi.asn);
		cells[0] = ips[i];
		cells[1] = gi.country[0] ? gi.country : gi.scope ? "" : "?";
		cells[2] = asn;
		cells[3] = gi.org;
		cells[4] = gi.scope ? gi.scope : "";
		if (out_table_add(t, cells) == -1) {
			out_table_free(t);
			return -1;
		}
	}
	if (fmt == OUT_CSV)
		out_table_print_csv(t, stdout);
	else {
		out_table_print(t, stdout);
		if (src[0] != '\0')
			printf("data: %s\n", src);
	}
	out_table_free(t);
	return 0;
}

int
cli_geo(int argc, char **argv)
{
	struct geo_opts o;
	struct geo *g;
	char err[1024], home[4096], src[1024];
	int rc, have;

	if (argc > 1 && strcmp(argv[1], "update") == 0)
		return cli_geo_update(argc - 1, argv + 1);
	if ((rc = geo_parse(argc, argv, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	g = geo_open(o.dir, ca_home(home, sizeof(home)) == 0 ? home : NULL, err,
	    sizeof(err));
	if ((have = g != NULL) == 0)
		fprintf(stderr, "peephole " GEO_CMD ": %s\n", err);
	geo_source(g, src, sizeof(src));
	out_view_init(0, 0);
	rc = o.fmt == OUT_JSON
	    ? geo_print_json(g, argc - optind, argv + optind, src)
	    : geo_print_table(g, argc - optind, argv + optind, src, o.fmt);
	geo_close(g);
	if (rc == -1) {
		fprintf(stderr, "peephole " GEO_CMD ": out of memory\n");
		return CLI_ERROR;
	}
	return have ? CLI_OK : CLI_ERROR;
}
