/*
 * geo_update: `peephole geo update --from DIR` (see proxy/cli/geo.c's
 * help): newer data checked, then installed into the peephole home's
 * geo/ in one rename.
 */
#ifndef PEEPHOLE_CLI_GEO_UPDATE_H
#define PEEPHOLE_CLI_GEO_UPDATE_H

/* argv[0] == "update". Exit status. */
int cli_geo_update(int argc, char **argv);

#endif
