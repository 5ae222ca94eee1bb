/*
 * setup: `peephole setup [--os OS] [--proxy HOST:PORT]` prints how to point
 * a system at the proxy -- macOS, Windows, GNOME, KDE, iOS, Android, or
 * environment variables -- with the exact commands for HOST:PORT, the PAC
 * URL, where to fetch the CA, and how to undo each.  It changes nothing
 * itself: the user runs what it prints.
 */
#include "proxy/cli/cli.h"

#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cli/args.h"

#define SETUP_CMD "setup"
#define SETUP_DEFAULT_PROXY "127.0.0.1:8080"
#define SETUP_HOST_MAX 253

static const char setup_usage_text[] =
    "usage: peephole setup [--os OS] [--proxy HOST:PORT]\n"
    "\n"
    "Print how to point a system at the proxy, with the commands for\n"
    "HOST:PORT, the PAC URL, where to get the CA, and how to undo it.\n"
    "Nothing is changed: run what it prints.\n"
    "\n"
    "  --os OS            macos, windows, gnome, kde, ios, android, env,\n"
    "                     or all (default)\n"
    "  --proxy HOST:PORT  the proxy's address as the device reaches it\n"
    "                     (default 127.0.0.1:8080; IPv6 as [::1]:8080);\n"
    "                     for a phone, this machine's LAN address, with\n"
    "                     `peephole run --listen` on it\n"
    "  --help             print this help\n";

/*
 * The steps per OS.  In each text {H} is the host as a bare name or
 * address, {U} the host as it goes in a URL (IPv6 in brackets), {P} the
 * port and {A} {U}:{P}; setup_print substitutes them.  Hosts are limited to
 * letters, digits and . - _ : so nothing needs shell quoting.
 */
static const struct {
	const char *os;
	const char *text;
} setup_texts[] = {
    {"macos",
	"macOS: System Settings > Network > (your network) > Details >\n"
	"  Proxies: Web proxy (HTTP) and Secure web proxy (HTTPS), server\n"
	"  {H} port {P}.  Or in Terminal, for the network service in use\n"
	"  (list them with: networksetup -listallnetworkservices):\n"
	"  networksetup -setwebproxy \"Wi-Fi\" {H} {P}\n"
	"  networksetup -setsecurewebproxy \"Wi-Fi\" {H} {P}\n"
	"  or automatic configuration instead:\n"
	"  networksetup -setautoproxyurl \"Wi-Fi\" http://{A}/proxy.pac\n"
	"  To undo:\n"
	"  networksetup -setwebproxystate \"Wi-Fi\" off\n"
	"  networksetup -setsecurewebproxystate \"Wi-Fi\" off\n"
	"  networksetup -setautoproxystate \"Wi-Fi\" off\n"},
    {"windows",
	"Windows 10/11: Settings > Network & internet > Proxy > Manual proxy\n"
	"  setup > Use a proxy server: On (Windows 11: Set up), Proxy IP\n"
	"  address {H}, Port {P}, Save.  Or Automatic proxy setup > Use setup\n"
	"  script: On, Script address http://{A}/proxy.pac.\n"
	"  Services and tools that use WinHTTP ignore that setting; in an\n"
	"  elevated Command Prompt:\n"
	"  netsh winhttp set proxy {A} \"<local>\"\n"
	"  To undo: Use a proxy server: Off; and netsh winhttp reset proxy\n"},
    {"gnome",
	"GNOME (Ubuntu, Fedora, ...): Settings > Network > Network Proxy >\n"
	"  Manual, HTTP and HTTPS proxy {H} port {P}; or as the desktop user:\n"
	"  gsettings set org.gnome.system.proxy mode 'manual'\n"
	"  gsettings set org.gnome.system.proxy.http host '{H}'\n"
	"  gsettings set org.gnome.system.proxy.http port {P}\n"
	"  gsettings set org.gnome.system.proxy.https host '{H}'\n"
	"  gsettings set org.gnome.system.proxy.https port {P}\n"
	"  or automatic configuration instead:\n"
	"  gsettings set org.gnome.system.proxy mode 'auto'\n"
	"  gsettings set org.gnome.system.proxy autoconfig-url "
	"'http://{A}/proxy.pac'\n"
	"  GNOME apps and Chromium follow it; Firefox does with Settings >\n"
	"  Network Settings > Use system proxy settings.\n"
	"  To undo: gsettings set org.gnome.system.proxy mode 'none'\n"},
    {"kde",
	"KDE Plasma: System Settings > Network > Settings > Proxy (Plasma 6:\n"
	"  Network & Internet > Proxy) > Use manually specified proxy\n"
	"  configuration: HTTP and HTTPS proxy {H} port {P}, Apply; or Use\n"
	"  proxy auto configuration URL: http://{A}/proxy.pac.  Or in a\n"
	"  terminal (Plasma 6: kwriteconfig6):\n"
	"  kwriteconfig5 --file kioslaverc --group 'Proxy Settings' "
	"--key ProxyType 1\n"
	"  kwriteconfig5 --file kioslaverc --group 'Proxy Settings' "
	"--key httpProxy 'http://{U} {P}'\n"
	"  kwriteconfig5 --file kioslaverc --group 'Proxy Settings' "
	"--key httpsProxy 'http://{U} {P}'\n"
	"  then tell running apps:\n"
	"  dbus-send --type=signal /KIO/Scheduler \\\n"
	"    org.kde.KIO.Scheduler.reparseSlaveConfiguration string:''\n"
	"  To undo: kwriteconfig5 --file kioslaverc --group 'Proxy Settings' "
	"--key ProxyType 0\n"},
    {"ios",
	"iOS/iPadOS: Settings > Wi-Fi > (i) next to the network > Configure\n"
	"  Proxy > Manual: Server {H}, Port {P}, Authentication off, Save.\n"
	"  Or Automatic, URL http://{A}/proxy.pac.\n"
	"  Then in Safari open http://{A}/ (with the proxy set, also\n"
	"  http://peephole.local/), download ca.cer, install it in Settings >\n"
	"  General > VPN & Device Management, and turn on full trust in\n"
	"  Settings > General > About > Certificate Trust Settings.\n"
	"  To undo: Configure Proxy > Off; remove the profile.\n"},
    {"android",
	"Android: Settings > Network & internet > Internet (or Wi-Fi) > the\n"
	"  network's gear > Edit (pencil) > Advanced options > Proxy >\n"
	"  Manual: Proxy hostname {H}, Proxy port {P}, Save.  Or Proxy\n"
	"  Auto-Config, PAC URL http://{A}/proxy.pac.  (Menu names vary by\n"
	"  vendor.)  An emulator or a device over adb:\n"
	"  adb shell settings put global http_proxy {A}\n"
	"  Then in the browser open http://{A}/ (with the proxy set, also\n"
	"  http://peephole.local/), download ca.cer and install it: Settings\n"
	"  > Security > Encryption & credentials > Install a certificate > CA\n"
	"  certificate.  Apps ignore user CAs unless they opt in: see\n"
	"  `peephole ca help --os android`.\n"
	"  To undo: Proxy > None; or adb shell settings put global "
	"http_proxy :0\n"},
    {"env",
	"Environment variables (curl, wget, git, pip, Python, Go, Node, ...),\n"
	"  in a POSIX shell:\n"
	"  export http_proxy=http://{A} https_proxy=http://{A}\n"
	"  export HTTP_PROXY=http://{A} HTTPS_PROXY=http://{A}\n"
	"  export no_proxy=localhost,127.0.0.1,::1 "
	"NO_PROXY=localhost,127.0.0.1,::1\n"
	"  and make the tools trust the CA, e.g.:\n"
	"  export SSL_CERT_FILE=\"$(peephole ca path)\" "
	"REQUESTS_CA_BUNDLE=\"$(peephole ca path)\"\n"
	"  export NODE_EXTRA_CA_CERTS=\"$(peephole ca path)\"\n"
	"  Windows (PowerShell): $env:HTTP_PROXY=\"http://{A}\"; "
	"$env:HTTPS_PROXY=\"http://{A}\"\n"
	"  To undo:\n"
	"  unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy "
	"NO_PROXY \\\n"
	"    SSL_CERT_FILE REQUESTS_CA_BUNDLE NODE_EXTRA_CA_CERTS\n"},
};

#define SETUP_NTEXTS (sizeof(setup_texts) / sizeof(setup_texts[0]))

struct setup_proxy {
	char host[SETUP_HOST_MAX + 1];    /* bare: no brackets */
	char urlhost[SETUP_HOST_MAX + 3]; /* host, IPv6 as [host] */
	char addr[SETUP_HOST_MAX + 9];    /* urlhost:port */
	unsigned port;
};

/* Print text with {H}, {U}, {P} and {A} replaced from p. */
static void
setup_print(const char *text, const struct setup_proxy *p)
{
	const char *s;

	for (s = text; *s != '\0'; s++) {
		if (s[0] == '{' && s[1] != '\0' && s[2] == '}' &&
		    strchr("HUPA", s[1]) != NULL) {
			if (s[1] == 'P')
				printf("%u", p->port);
			else
				fputs(s[1] == 'H'     ? p->host
					: s[1] == 'U' ? p->urlhost
						      : p->addr,
				    stdout);
			s += 2;
			continue;
		}
		putchar(*s);
	}
}

/*
 * Parse HOST:PORT or [IPv6]:PORT into p.  The host may hold only letters,
 * digits and . - _ : (names and address literals), so what is printed is
 * safe to paste into a shell.  CLI_OK or CLI_USAGE (printed).
 */
static int
setup_parse_proxy(const char *s, struct setup_proxy *p)
{
	const char *colon = strrchr(s, ':'), *h = s, *c;
	size_t hlen;
	char *end;
	long port;

	if (colon == NULL)
		return args_usage(
		    SETUP_CMD, "bad --proxy '%s' (want HOST:PORT)", s);
	hlen = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hlen < 2 || s[hlen - 1] != ']')
			return args_usage(SETUP_CMD,
			    "bad --proxy '%s' (IPv6 as [ADDR]:PORT)", s);
		h++;
		hlen -= 2;
	} else if (memchr(s, ':', hlen) != NULL)
		return args_usage(
		    SETUP_CMD, "bad --proxy '%s' (IPv6 as [ADDR]:PORT)", s);
	if (hlen == 0 || hlen > SETUP_HOST_MAX)
		return args_usage(
		    SETUP_CMD, "bad --proxy '%s' (want HOST:PORT)", s);
	for (c = h; c < h + hlen; c++)
		if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' &&
		    *c != '_' && *c != ':')
			return args_usage(SETUP_CMD,
			    "bad --proxy '%s' (the host must be a name or an "
			    "address)",
			    s);
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535 ||
	    !isdigit((unsigned char)colon[1]))
		return args_usage(SETUP_CMD,
		    "bad --proxy '%s' (the port must be 1 to 65535)", s);
	memcpy(p->host, h, hlen);
	p->host[hlen] = '\0';
	p->port = (unsigned)port;
	snprintf(p->urlhost, sizeof(p->urlhost), "%s%s%s", h == s ? "" : "[",
	    p->host, h == s ? "" : "]");
	snprintf(p->addr, sizeof(p->addr), "%s:%u", p->urlhost, p->port);
	return CLI_OK;
}

/* Index of os in setup_texts, -1 for "all", -2 if unknown. */
static int
setup_find_os(const char *os)
{
	size_t i;

	if (strcmp(os, "all") == 0)
		return -1;
	for (i = 0; i < SETUP_NTEXTS; i++)
		if (strcmp(setup_texts[i].os, os) == 0)
			return (int)i;
	return -2;
}

/* The flags as given, before they are checked. */
struct setup_args {
	const char *os, *proxy;
};

static int
setup_opt(int ch, char *arg, void *opts)
{
	struct setup_args *a = opts;

	*(ch == 's' ? &a->os : &a->proxy) = arg;
	return 0;
}

/* Parse the flags into *os and p.  CLI_OK, ARGS_HELP or CLI_USAGE. */
static int
setup_parse(int argc, char **argv, const char **os, struct setup_proxy *p)
{
	static const struct option longopts[] = {
	    {"os", required_argument, NULL, 's'},
	    {"proxy", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const struct args_spec spec = {
	    SETUP_CMD, setup_usage_text, NULL, longopts, setup_opt};
	struct setup_args a = {"all", SETUP_DEFAULT_PROXY};
	int rc;

	*os = a.os;
	if ((rc = args_parse(&spec, argc, argv, &a)) != CLI_OK ||
	    (rc = args_no_operands(SETUP_CMD, argc, argv)) != CLI_OK)
		return rc;
	*os = a.os;
	if (setup_find_os(*os) == -2)
		return args_usage(SETUP_CMD,
		    "unknown --os '%s' (want macos, windows, gnome, kde, ios, "
		    "android, env or all)",
		    *os);
	return setup_parse_proxy(a.proxy, p);
}

int
cli_setup(int argc, char **argv)
{
	struct setup_proxy p;
	const char *os;
	size_t i;
	int rc, which;

	memset(&p, 0, sizeof(p));
	if ((rc = setup_parse(argc, argv, &os, &p)) != CLI_OK)
		return rc == ARGS_HELP ? CLI_OK : rc;
	which = setup_find_os(os);
	printf("Proxy: %s, started with: peephole run --listen %s\n"
	       "(another device needs an address of this machine it can "
	       "reach, not loopback)\n"
	       "CA: open http://%s/ (with the proxy set, also "
	       "http://peephole.local/),\n"
	       "or see `peephole ca help`.\n"
	       "PAC URL: http://%s/proxy.pac\n",
	    p.addr, p.addr, p.addr, p.addr);
	for (i = 0; i < SETUP_NTEXTS; i++)
		if (which == -1 || (size_t)which == i) {
			putchar('\n');
			setup_print(setup_texts[i].text, &p);
		}
	if (fflush(stdout) != 0)
		return CLI_ERROR;
	return CLI_OK;
}
