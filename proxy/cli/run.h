/* run: the `peephole run` sub-command — load settings, open the store,
 * serve until a signal. */
#ifndef PEEPHOLE_CLI_RUN_H
#define PEEPHOLE_CLI_RUN_H

/* argv[0] is "run". Returns the process exit status. */
int cli_run(int argc, char **argv);

#endif
