/*
 * ca: `peephole ca init | path | export | help`, the user's handle on the
 * root CA in ca/: create it, find it, export its certificate in the form a
 * device wants, and print how to trust it. The CA lives in a directory
 * (--home, default $PEEPHOLE_HOME or ~/.peephole) as ca.pem and ca.key.
 */
#include "proxy/cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/ca.h"
#include "proxy/cli/args.h"

#define CA_CMD "ca"

/* Which flags a sub-command takes. */
enum {
	CA_OPT_FORCE = 1 << 0,
	CA_OPT_FORMAT = 1 << 1,
	CA_OPT_OUT = 1 << 2,
	CA_OPT_OS = 1 << 3,
};

static const char ca_usage_text[] =
    "usage: peephole ca init [--force] [--home DIR]\n"
    "       peephole ca path [--home DIR]\n"
    "       peephole ca export [--format pem|der|p12] [--out FILE] "
    "[--home DIR]\n"
    "       peephole ca help [--os OS] [--home DIR]\n"
    "\n"
    "peephole's root CA, which signs the certificates it shows clients\n"
    "when it intercepts HTTPS. Clients must trust it; keep ca.key private.\n"
    "\n"
    "  init        create the CA (ca.pem, ca.key) in the home directory;\n"
    "              refuses to replace one unless --force is given\n"
    "  path        print the path of the CA certificate (ca.pem)\n"
    "  export      write the certificate (never the key) as PEM (default),\n"
    "              DER or PKCS#12 (empty password) to FILE or stdout\n"
    "  help        how to trust the CA on OS: macos, windows, linux,\n"
    "              firefox, chromium, ios, android (default: all)\n"
    "\n"
    "  --home DIR  the CA directory (default $PEEPHOLE_HOME, else\n"
    "              ~/.peephole)\n"
    "  --force     (init) replace an existing CA; clients that trusted the\n"
    "              old one must be given the new one\n"
    "  --format F  (export) pem, der or p12\n"
    "  --out FILE  (export) write to FILE instead of stdout\n"
    "  --os OS     (help) one platform only\n"
    "  --help      print this help\n";

struct ca_opts {
	char cmd[32]; /* "ca init", for messages */
	char home[1024];
	int allowed;          /* CA_OPT_* this sub-command takes */
	const char *home_arg; /* --home as given */
	int force;
	const char *format;
	const char *out;
	const char *os;
};

static int
ca_opt(int ch, char *arg, void *opts)
{
	struct ca_opts *o = opts;
	int need = ch == 'f' ? CA_OPT_FORCE
	    : ch == 'F'      ? CA_OPT_FORMAT
	    : ch == 'o'      ? CA_OPT_OUT
	    : ch == 's'      ? CA_OPT_OS
			     : 0;

	if (need != 0 && !(o->allowed & need))
		return ARGS_UNKNOWN;
	switch (ch) {
	case 'H':
		o->home_arg = arg;
		break;
	case 'f':
		o->force = 1;
		break;
	case 'F':
		o->format = arg;
		break;
	case 'o':
		o->out = arg;
		break;
	case 's':
		o->os = arg;
		break;
	}
	return 0;
}

/* Parse a sub-command's flags (argv[0] is its name); allowed is a mask of
 * CA_OPT_*. CLI_OK, ARGS_HELP or CLI_USAGE (printed). */
static int
ca_parse(int argc, char **argv, int allowed, struct ca_opts *o)
{
	static const struct option longopts[] = {
	    {"home", required_argument, NULL, 'H'},
	    {"force", no_argument, NULL, 'f'},
	    {"format", required_argument, NULL, 'F'},
	    {"out", required_argument, NULL, 'o'},
	    {"os", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const struct args_spec spec = {
	    o->cmd, ca_usage_text, NULL, longopts, ca_opt};
	const char *home;
	int rc;

	o->allowed = allowed;
	o->home_arg = NULL;
	if ((rc = args_parse(&spec, argc, argv, o)) != CLI_OK ||
	    (rc = args_no_operands(o->cmd, argc, argv)) != CLI_OK)
		return rc;
	if ((home = o->home_arg) != NULL) {
		if (home[0] == '\0')
			return args_usage(o->cmd, "empty --home");
		if ((size_t)snprintf(o->home, sizeof(o->home), "%s", home) >=
		    sizeof(o->home))
			return args_usage(o->cmd, "--home is too long");
	}
	return CLI_OK;
}

/* Fill o->home from ca_home() unless --home gave it. 0 / -1 (printed). */
static int
ca_resolve_home(struct ca_opts *o)
{
	if (o->home[0] != '\0')
		return 0;
	if (ca_home(o->home, sizeof(o->home)) == -1) {
		fprintf(stderr,
		    "peephole %s: cannot find the CA directory: set "
		    "PEEPHOLE_HOME or HOME, or use --home DIR\n",
		    o->cmd);
		return -1;
	}
	return 0;
}

/* DIR/NAME into buf. 0 / -1 (printed) when it does not fit. */
static int
ca_file(const struct ca_opts *o, const char *name, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/%s", o->home, name) >= len) {
		fprintf(stderr, "peephole %s: path too long: %s/%s\n", o->cmd,
		    o->home, name);
		return -1;
	}
	return 0;
}

static int
ca_exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/* The subject (with its random id) and SHA-256 fingerprint of the CA in
 * home, so the user can pick it out of a trust store. */
static void
ca_print_id(const char *home)
{
	char err[512], sub[256], fp[EVP_MAX_MD_SIZE * 3 + 1];
	struct ca *ca = ca_load_or_create(home, err, sizeof(err));

	if (ca == NULL)
		return;
	X509_NAME_oneline(X509_get_subject_name(ca_cert(ca)), sub, sizeof(sub));
	printf("subject: %s\n", sub);
	if (ca_fingerprint(ca, fp, sizeof(fp)) == 0)
		printf("SHA-256: %s\n", fp);
	ca_free(ca);
}

static int
ca_init(struct ca_opts *o)
{
	char pem[1100], key[1100], err[512];

	if (ca_file(o, "ca.pem", pem, sizeof(pem)) == -1 ||
	    ca_file(o, "ca.key", key, sizeof(key)) == -1)
		return CLI_ERROR;
	if (!o->force && (ca_exists(pem) || ca_exists(key))) {
		fprintf(stderr,
		    "peephole %s: a CA already exists in %s; not replacing "
		    "it (use --force to make a new one, which every client "
		    "must then trust again)\n",
		    o->cmd, o->home);
		return CLI_ERROR;
	}
	/* ca_create makes the files; the directory may be new too. */
	if (mkdir(o->home, 0700) == -1 && errno != EEXIST) {
		fprintf(stderr, "peephole %s: cannot create %s: %s\n", o->cmd,
		    o->home, strerror(errno));
		return CLI_ERROR;
	}
	if (ca_create(o->home, o->force, err, sizeof(err)) == -1) {
		fprintf(stderr, "peephole %s: %s\n", o->cmd, err);
		return CLI_ERROR;
	}
	printf("created a new CA in %s\n"
	       "certificate: %s\n",
	    o->home, pem);
	ca_print_id(o->home);
	printf("trust it on your devices: peephole ca help\n");
	return CLI_OK;
}

static int
ca_path(struct ca_opts *o)
{
	char pem[1100];

	if (ca_file(o, "ca.pem", pem, sizeof(pem)) == -1)
		return CLI_ERROR;
	printf("%s\n", pem);
	if (!ca_exists(pem))
		fprintf(stderr,
		    "peephole %s: (not created yet: `peephole ca init` or "
		    "`peephole run` creates it)\n",
		    o->cmd);
	return CLI_OK;
}

static int
ca_export_cmd(struct ca_opts *o)
{
	char pem[1100], err[512];
	struct ca *ca;
	int rc;

	/* Loading would create a CA where there is none: export only ever
	 * exports what exists. */
	if (ca_file(o, "ca.pem", pem, sizeof(pem)) == -1)
		return CLI_ERROR;
	if (!ca_exists(pem)) {
		fprintf(stderr,
		    "peephole %s: no CA in %s (create one with `peephole ca "
		    "init`)\n",
		    o->cmd, o->home);
		return CLI_ERROR;
	}
	if ((ca = ca_load_or_create(o->home, err, sizeof(err))) == NULL) {
		fprintf(stderr, "peephole %s: %s\n", o->cmd, err);
		return CLI_ERROR;
	}
	fflush(stdout);
	rc = ca_export(ca, o->format, o->out, err, sizeof(err));
	ca_free(ca);
	if (rc == -1) {
		fprintf(stderr, "peephole %s: %s\n", o->cmd, err);
		return CLI_ERROR;
	}
	if (o->out != NULL)
		printf(
		    "wrote the CA certificate (%s) to %s\n", o->format, o->out);
	return CLI_OK;
}

static int
ca_help_cmd(struct ca_opts *o)
{
	char pem[1100];

	if (ca_file(o, "ca.pem", pem, sizeof(pem)) == -1)
		return CLI_ERROR;
	if (ca_help(o->os, pem, stdout) == -1)
		return args_usage(o->cmd,
		    "unknown --os '%s' (want macos, windows, linux, firefox, "
		    "chromium, ios or android)",
		    o->os);
	return CLI_OK;
}

int
cli_ca(int argc, char **argv)
{
	static const struct {
		const char *name;
		int allowed;
		int (*fn)(struct ca_opts *);
	} subs[] = {
	    {"init", CA_OPT_FORCE, ca_init},
	    {"path", 0, ca_path},
	    {"export", CA_OPT_FORMAT | CA_OPT_OUT, ca_export_cmd},
	    {"help", CA_OPT_OS, ca_help_cmd},
	};
	struct ca_opts o;
	size_t i;
	int rc;

	if (argc < 2)
		return args_usage(
		    CA_CMD, "missing sub-command (init, path, export or help)");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(ca_usage_text, stdout);
		return CLI_OK;
	}
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			break;
	if (i == sizeof(subs) / sizeof(subs[0]))
		return args_usage(CA_CMD,
		    "unknown sub-command '%s' (want init, path, export or "
		    "help)",
		    argv[1]);
	memset(&o, 0, sizeof(o));
	snprintf(o.cmd, sizeof(o.cmd), "%s %s", CA_CMD, subs[i].name);
	o.format = "pem";
	if ((rc = ca_parse(argc - 1, argv + 1, subs[i].allowed, &o)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	if (strcmp(o.format, "pem") != 0 && strcmp(o.format, "der") != 0 &&
	    strcmp(o.format, "p12") != 0)
		return args_usage(o.cmd,
		    "bad value for --format: '%s' (want pem, der or p12)",
		    o.format);
	if (o.out == NULL && strcmp(o.format, "pem") != 0 &&
	    isatty(STDOUT_FILENO))
		return args_usage(o.cmd,
		    "%s is binary: use --out FILE or redirect stdout",
		    o.format);
	if (ca_resolve_home(&o) == -1)
		return CLI_ERROR;
	return subs[i].fn(&o);
}
