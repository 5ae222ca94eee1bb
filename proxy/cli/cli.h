/*
 * cli: the sub-commands other than run. Each takes the arguments after
 * "peephole" (argv[0] is the command name), prints to stdout / stderr and
 * returns the process exit status: 0 ok, 1 runtime error (no database,
 * unknown id, ...), 2 usage error.
 */
#ifndef PEEPHOLE_CLI_H
#define PEEPHOLE_CLI_H

/* Exit statuses shared by every command. */
#define CLI_OK 0
#define CLI_ERROR 1
#define CLI_USAGE 2

#define PEEPHOLE_VERSION "0.1.0"

/* Default database, relative to the working directory. */
#define CLI_DEFAULT_DB "peephole.db"

int cli_domains(int argc, char **argv);  /* argv[0] == "domains" */
int cli_requests(int argc, char **argv); /* argv[0] == "requests" */
int cli_show(int argc, char **argv);     /* argv[0] == "show" */
int cli_streams(int argc, char **argv);  /* argv[0] == "streams" */
/* `show stream ID`: argv[0] == "stream" (cli_show dispatches here) */
int cli_show_stream(int argc, char **argv);
int cli_trace(int argc, char **argv); /* "trace": TCP traceroutes */
/* `show trace ID`: argv[0] == "trace" (cli_show dispatches here) */
int cli_show_trace(int argc, char **argv);
int cli_passthrough(int argc, char **argv); /* "passthrough" list|clear */
int cli_ca(int argc, char **argv);          /* "ca" init|path|export|help */
int cli_setup(int argc, char **argv);       /* "setup" [--os] [--proxy] */
int cli_export(int argc, char **argv);      /* "export" har|curl|bodies */
int cli_replay(int argc, char **argv);      /* "replay" ID...|--filter */
int cli_prune(int argc, char **argv);       /* "prune" --before|--filter */
int cli_web(int argc, char **argv);         /* "web" --db: the UI alone */
int cli_locality(int argc, char **argv);    /* "locality": where bytes went */
/* "resolve-compare": names against several resolvers, stored, compared */
int cli_resolve_compare(int argc, char **argv);
int cli_geo(int argc, char **argv); /* "geo" IP...|update */

#endif
