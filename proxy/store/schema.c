/* schema: see schema.h. */
#include "proxy/store/schema.h"

#include <sqlite3.h>
#include <stdio.h>

#include "proxy/store/store.h"

/*
 * Step N takes a file from user_version N to N + 1. A new version appends
 * one entry (ALTER TABLE ..., a new index, ...) and bumps
 * STORE_SCHEMA_VERSION; earlier steps are never edited, so every file walks
 * the same path.
 *
 * Times are integer microseconds since the epoch, durations integer
 * microseconds (NULL when the phase did not happen). Bodies live once in
 * `bodies`, keyed by the hex SHA-256 of the captured bytes; a request keeps
 * the real size and a truncated flag next to the reference.
 */
static const char schema_step_v1[] =
    "CREATE TABLE connections ("
    " id INTEGER PRIMARY KEY,"
    " listener TEXT, client_ip TEXT, client_port INTEGER,"
    " target_host TEXT, target_port INTEGER,"
    " server_ip TEXT, server_port INTEGER, protocol TEXT,"
    " t_accept_us INTEGER, t_first_byte_us INTEGER, t_close_us INTEGER,"
    " bytes_from_client INTEGER, bytes_to_client INTEGER,"
    " bytes_to_server INTEGER, bytes_from_server INTEGER,"
    " nrequests INTEGER, close_reason TEXT, error TEXT);"
    "CREATE INDEX connections_target_host ON connections(target_host);"
    "CREATE TABLE requests ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " conn_id INTEGER NOT NULL, seq INTEGER, t_start_us INTEGER,"
    " client_ip TEXT, scheme TEXT, method TEXT, host TEXT, port INTEGER,"
    " path TEXT, query TEXT, req_version TEXT, resp_version TEXT,"
    " status INTEGER, req_headers TEXT, resp_headers TEXT,"
    " req_header_bytes INTEGER, resp_header_bytes INTEGER,"
    " req_body_size INTEGER, req_body_sha TEXT,"
    " req_body_truncated INTEGER NOT NULL DEFAULT 0,"
    " resp_body_size INTEGER, resp_body_sha TEXT,"
    " resp_body_truncated INTEGER NOT NULL DEFAULT 0,"
    " content_type TEXT, server_ip TEXT, server_port INTEGER,"
    " upstream_reused INTEGER, dns_us INTEGER, connect_us INTEGER,"
    " ttfb_us INTEGER, total_us INTEGER, error TEXT,"
    " replay_of INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX requests_host ON requests(host);"
    "CREATE INDEX requests_conn_id ON requests(conn_id);"
    "CREATE TABLE domain_ips ("
    " id INTEGER PRIMARY KEY,"
    " domain TEXT NOT NULL, ip TEXT NOT NULL, source TEXT NOT NULL,"
    " first_seen INTEGER, last_seen INTEGER, ttl INTEGER,"
    " count INTEGER NOT NULL DEFAULT 1,"
    " UNIQUE (domain, ip, source));"
    "CREATE TABLE bodies ("
    " sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, data BLOB);"
    /*
     * The catalogue: every name seen as a request host, a connection
     * target or a DNS answer, with what each table knows about it. Each
     * part is aggregated once and joined, rather than correlated per name,
     * so it stays linear in the size of the capture.
     */
    "CREATE VIEW domain_catalogue AS WITH"
    " seen(name, t) AS ("
    "  SELECT host, t_start_us FROM requests"
    "  UNION ALL SELECT target_host, t_accept_us FROM connections"
    "  UNION ALL SELECT target_host, t_close_us FROM connections"
    "  UNION ALL SELECT domain, first_seen FROM domain_ips"
    "  UNION ALL SELECT domain, last_seen FROM domain_ips),"
    " names AS (SELECT name, min(nullif(t, 0)) AS first_us,"
    "  max(nullif(t, 0)) AS last_us FROM seen"
    "  WHERE name IS NOT NULL AND name <> '' GROUP BY name),"
    " req AS (SELECT host AS name, count(*) AS nreq,"
    "  sum(coalesce(req_header_bytes, 0) + coalesce(req_body_size, 0))"
    "   AS up,"
    "  sum(coalesce(resp_header_bytes, 0) + coalesce(resp_body_size, 0))"
    "   AS down"
    "  FROM requests GROUP BY host),"
    " cids(name, cid) AS (SELECT host, conn_id FROM requests"
    "  UNION SELECT target_host, id FROM connections),"
    " conns AS (SELECT name, count(*) AS nconn FROM cids GROUP BY name),"
    " portlist(name, port) AS ("
    "  SELECT host, port FROM requests WHERE port > 0"
    "  UNION SELECT target_host, target_port FROM connections"
    "  WHERE target_port > 0),"
    " ports AS (SELECT name, group_concat(port, ',') AS ports FROM"
    "  (SELECT name, port FROM portlist ORDER BY name, port)"
    "  GROUP BY name),"
    " iplist(name, ip) AS (SELECT domain, ip FROM domain_ips"
    "  UNION SELECT host, server_ip FROM requests"
    "  WHERE server_ip IS NOT NULL AND server_ip <> ''"
    "  UNION SELECT target_host, server_ip FROM connections"
    "  WHERE server_ip IS NOT NULL AND server_ip <> ''),"
    " ips AS (SELECT name, group_concat(ip, ',') AS ips FROM"
    "  (SELECT name, ip FROM iplist ORDER BY name, ip) GROUP BY name)"
    " SELECT n.name AS name, n.first_us AS first_seen_us,"
    "  n.last_us AS last_seen_us,"
    "  coalesce(c.nconn, 0) AS connections,"
    "  coalesce(r.nreq, 0) AS requests,"
    "  coalesce(r.up, 0) AS bytes_up, coalesce(r.down, 0) AS bytes_down,"
    "  coalesce(p.ports, '') AS ports, coalesce(i.ips, '') AS ips"
    " FROM names n"
    " LEFT JOIN req r ON r.name = n.name"
    " LEFT JOIN conns c ON c.name = n.name"
    " LEFT JOIN ports p ON p.name = n.name"
    " LEFT JOIN ips i ON i.name = n.name;";

/*
 * Version 2, HTTPS interception: what each connection's TLS legs were and
 * why it was intercepted, passed through or blocked; the (host, port) pairs
 * the proxy learned to pass through (a client that refused the forged
 * certificate, i.e. pins); and a catalogue that shows both. The catalogue
 * now also counts a connection under its SNI when that differs from the
 * target asked for (a CONNECT or transparent connection to a bare IP).
 */
static const char schema_step_v2[] =
    "ALTER TABLE connections ADD COLUMN sni TEXT;"
    "ALTER TABLE connections ADD COLUMN alpn TEXT;"
    "ALTER TABLE connections ADD COLUMN decision TEXT;"
    "ALTER TABLE connections ADD COLUMN decision_reason TEXT;"
    "ALTER TABLE connections ADD COLUMN tls_client TEXT;"
    "ALTER TABLE connections ADD COLUMN tls_server TEXT;"
    "ALTER TABLE connections ADD COLUMN upstream_cert_sha256 TEXT;"
    "ALTER TABLE connections ADD COLUMN upstream_cert_subject TEXT;"
    "ALTER TABLE connections ADD COLUMN upstream_cert_issuer TEXT;"
    "ALTER TABLE connections ADD COLUMN verify_error TEXT;"
    "CREATE TABLE learned_passthrough ("
    " host TEXT NOT NULL, port INTEGER NOT NULL, reason TEXT,"
    " first_seen INTEGER, last_seen INTEGER,"
    " count INTEGER NOT NULL DEFAULT 1,"
    " PRIMARY KEY (host, port));"
    "DROP VIEW domain_catalogue;"
    "CREATE VIEW domain_catalogue AS WITH"
    /* Each connection under its target, and under its SNI when that
     * names something else; UNION keeps one row when they agree. */
    " ctarget(name, id, port, ip, protocol, decision, t_open, t_close) AS ("
    "  SELECT target_host, id, target_port, server_ip, protocol, decision,"
    "  t_accept_us, t_close_us FROM connections"
    "  UNION SELECT sni, id, target_port, server_ip, protocol, decision,"
    "  t_accept_us, t_close_us FROM connections"
    "  WHERE sni IS NOT NULL AND sni <> ''),"
    " seen(name, t) AS ("
    "  SELECT host, t_start_us FROM requests"
    "  UNION ALL SELECT name, t_open FROM ctarget"
    "  UNION ALL SELECT name, t_close FROM ctarget"
    "  UNION ALL SELECT domain, first_seen FROM domain_ips"
    "  UNION ALL SELECT domain, last_seen FROM domain_ips"
    "  UNION ALL SELECT host, first_seen FROM learned_passthrough"
    "  UNION ALL SELECT host, last_seen FROM learned_passthrough),"
    " names AS (SELECT name, min(nullif(t, 0)) AS first_us,"
    "  max(nullif(t, 0)) AS last_us FROM seen"
    "  WHERE name IS NOT NULL AND name <> '' GROUP BY name),"
    " req AS (SELECT host AS name, count(*) AS nreq,"
    "  sum(coalesce(req_header_bytes, 0) + coalesce(req_body_size, 0))"
    "   AS up,"
    "  sum(coalesce(resp_header_bytes, 0) + coalesce(resp_body_size, 0))"
    "   AS down"
    "  FROM requests GROUP BY host),"
    " cids(name, cid) AS (SELECT host, conn_id FROM requests"
    "  UNION SELECT name, id FROM ctarget),"
    " conns AS (SELECT name, count(*) AS nconn FROM cids GROUP BY name),"
    " decided AS (SELECT name,"
    "  sum(decision = 'intercept') AS nint,"
    "  sum(decision = 'passthrough') AS npass"
    "  FROM ctarget GROUP BY name),"
    " protos AS (SELECT name, group_concat(protocol, ',') AS protocols"
    "  FROM (SELECT DISTINCT name, protocol FROM ctarget"
    "  WHERE protocol IS NOT NULL AND protocol <> ''"
    "  ORDER BY name, protocol) GROUP BY name),"
    " pins AS (SELECT DISTINCT host AS name FROM learned_passthrough),"
    " portlist(name, port) AS ("
    "  SELECT host, port FROM requests WHERE port > 0"
    "  UNION SELECT name, port FROM ctarget WHERE port > 0),"
    " ports AS (SELECT name, group_concat(port, ',') AS ports FROM"
    "  (SELECT name, port FROM portlist ORDER BY name, port)"
    "  GROUP BY name),"
    " iplist(name, ip) AS (SELECT domain, ip FROM domain_ips"
    "  UNION SELECT host, server_ip FROM requests"
    "  WHERE server_ip IS NOT NULL AND server_ip <> ''"
    "  UNION SELECT name, ip FROM ctarget"
    "  WHERE ip IS NOT NULL AND ip <> ''),"
    " ips AS (SELECT name, group_concat(ip, ',') AS ips FROM"
    "  (SELECT name, ip FROM iplist ORDER BY name, ip) GROUP BY name)"
    " SELECT n.name AS name, n.first_us AS first_seen_us,"
    "  n.last_us AS last_seen_us,"
    "  coalesce(c.nconn, 0) AS connections,"
    "  coalesce(r.nreq, 0) AS requests,"
    "  coalesce(r.up, 0) AS bytes_up, coalesce(r.down, 0) AS bytes_down,"
    "  coalesce(p.ports, '') AS ports, coalesce(i.ips, '') AS ips,"
    "  coalesce(pr.protocols, '') AS protocols,"
    "  coalesce(d.nint, 0) AS intercepted,"
    "  coalesce(d.npass, 0) AS passed_through,"
    "  pn.name IS NOT NULL AS pinned"
    " FROM names n"
    " LEFT JOIN req r ON r.name = n.name"
    " LEFT JOIN conns c ON c.name = n.name"
    " LEFT JOIN ports p ON p.name = n.name"
    " LEFT JOIN ips i ON i.name = n.name"
    " LEFT JOIN decided d ON d.name = n.name"
    " LEFT JOIN protos pr ON pr.name = n.name"
    " LEFT JOIN pins pn ON pn.name = n.name;";

/*
 * Version 3, streams peephole relays without reading them (passthrough TLS,
 * mmTLS longlink, SSH, anything else): the target as the client asked for
 * it, when each side connected and first / last sent, reads each way, who
 * closed, TCP_INFO of both sockets at close (NULL when unknown), mmTLS
 * record counts, and a capped per-stream event series in stream_events.
 *
 * stream_names names a connection that asked for a bare IP address: the
 * SNI of that connection, else the freshest name the capture tied to that
 * address in domain_ips (preferring one known before the connection
 * opened: addresses get reused), with the evidence (named_by, named_at_us).
 * The catalogue lists such a connection under that name too, and says how
 * the name was found.
 */
static const char schema_step_v3_columns[] =
    "ALTER TABLE connections ADD COLUMN listener_target TEXT;"
    "ALTER TABLE connections ADD COLUMN t_upstream_connected_us INTEGER;"
    "ALTER TABLE connections ADD COLUMN t_first_up_us INTEGER;"
    "ALTER TABLE connections ADD COLUMN t_last_up_us INTEGER;"
    "ALTER TABLE connections ADD COLUMN t_first_down_us INTEGER;"
    "ALTER TABLE connections ADD COLUMN t_last_down_us INTEGER;"
    "ALTER TABLE connections ADD COLUMN reads_up INTEGER;"
    "ALTER TABLE connections ADD COLUMN reads_down INTEGER;"
    "ALTER TABLE connections ADD COLUMN closed_by TEXT;"
    "ALTER TABLE connections ADD COLUMN events INTEGER;"
    "ALTER TABLE connections ADD COLUMN events_capped INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_client_rtt_us INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_client_rttvar_us INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_client_retransmits INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_client_total_retrans INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_client_lost INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_client_reordering INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_client_snd_cwnd INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_client_pmtu INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_server_rtt_us INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_server_rttvar_us INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_server_retransmits INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_server_total_retrans INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_server_lost INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_server_reordering INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_server_snd_cwnd INTEGER;"
    "ALTER TABLE connections ADD COLUMN tcp_server_pmtu INTEGER;"
    "ALTER TABLE connections ADD COLUMN mmtls_bad INTEGER;"
    "ALTER TABLE connections ADD COLUMN mmtls_records INTEGER;"
    "ALTER TABLE connections ADD COLUMN mmtls_handshake INTEGER;"
    "ALTER TABLE connections ADD COLUMN mmtls_early INTEGER;"
    "ALTER TABLE connections ADD COLUMN mmtls_data INTEGER;"
    "ALTER TABLE connections ADD COLUMN mmtls_alert INTEGER;"
    "CREATE TABLE stream_events ("
    " conn_id INTEGER NOT NULL, t_us INTEGER NOT NULL,"
    " dir INTEGER NOT NULL, bytes INTEGER NOT NULL, mmtls_type INTEGER);"
    "CREATE INDEX stream_events_conn ON stream_events(conn_id, t_us);"
    "CREATE INDEX domain_ips_ip ON domain_ips(ip);";

static const char schema_step_v3_names[] =
    "CREATE VIEW stream_names AS WITH"
    " t(id, ip, sni, t_open) AS (SELECT id,"
    "  CASE WHEN instr(target_host, ':') > 0"
    "   OR (target_host GLOB '*.*.*.*'"
    "   AND target_host NOT GLOB '*[^0-9.]*') THEN target_host"
    "  WHEN coalesce(target_host, '') = '' THEN nullif(server_ip, '')"
    "  END, nullif(sni, ''), t_accept_us FROM connections),"
    /* The evidence row for each address without an SNI: the freshest
     * known when the connection opened, else the freshest at all.
     * (SQLite's ORDER BY cannot see the outer row, hence two.) */
    " best(id, ip, sni, t_open, dip) AS (SELECT t.*, CASE WHEN t.sni"
    "  IS NULL THEN coalesce("
    "  (SELECT e.id FROM domain_ips e WHERE e.ip = t.ip"
    "  AND e.domain <> e.ip AND coalesce(e.first_seen, 0)"
    "  <= coalesce(t.t_open, 9223372036854775807)"
    "  ORDER BY e.last_seen DESC, e.id DESC LIMIT 1),"
    "  (SELECT e.id FROM domain_ips e WHERE e.ip = t.ip"
    "  AND e.domain <> e.ip ORDER BY e.last_seen DESC, e.id DESC"
    "  LIMIT 1)) END"
    "  FROM t WHERE t.ip IS NOT NULL)"
    " SELECT b.id AS conn_id, b.ip AS ip,"
    "  coalesce(b.sni, d.domain) AS name,"
    "  CASE WHEN b.sni IS NOT NULL THEN 'sni' ELSE d.source END"
    "   AS named_by,"
    "  CASE WHEN b.sni IS NOT NULL THEN b.t_open ELSE d.last_seen END"
    "   AS named_at_us"
    " FROM best b LEFT JOIN domain_ips d ON d.id = b.dip;";

static const char schema_step_v3_catalogue[] =
    "DROP VIEW domain_catalogue;"
    "CREATE VIEW domain_catalogue AS WITH"
    /* Each connection under its target, under its SNI when that names
     * something else, and under the name found for a bare address;
     * UNION keeps one row when they agree. */
    " ctarget(name, id, port, ip, protocol, decision, t_open, t_close) AS ("
    "  SELECT target_host, id, target_port, server_ip, protocol, decision,"
    "  t_accept_us, t_close_us FROM connections"
    "  UNION SELECT sni, id, target_port, server_ip, protocol, decision,"
    "  t_accept_us, t_close_us FROM connections"
    "  WHERE sni IS NOT NULL AND sni <> ''"
    "  UNION SELECT n.name, c.id, c.target_port, c.server_ip, c.protocol,"
    "  c.decision, c.t_accept_us, c.t_close_us"
    "  FROM stream_names n JOIN connections c ON c.id = n.conn_id"
    "  WHERE n.name IS NOT NULL),"
    " seen(name, t) AS ("
    "  SELECT host, t_start_us FROM requests"
    "  UNION ALL SELECT name, t_open FROM ctarget"
    "  UNION ALL SELECT name, t_close FROM ctarget"
    "  UNION ALL SELECT domain, first_seen FROM domain_ips"
    "  UNION ALL SELECT domain, last_seen FROM domain_ips"
    "  UNION ALL SELECT host, first_seen FROM learned_passthrough"
    "  UNION ALL SELECT host, last_seen FROM learned_passthrough),"
    " names AS (SELECT name, min(nullif(t, 0)) AS first_us,"
    "  max(nullif(t, 0)) AS last_us FROM seen"
    "  WHERE name IS NOT NULL AND name <> '' GROUP BY name),"
    " req AS (SELECT host AS name, count(*) AS nreq,"
    "  sum(coalesce(req_header_bytes, 0) + coalesce(req_body_size, 0))"
    "   AS up,"
    "  sum(coalesce(resp_header_bytes, 0) + coalesce(resp_body_size, 0))"
    "   AS down"
    "  FROM requests GROUP BY host),"
    " cids(name, cid) AS (SELECT host, conn_id FROM requests"
    "  UNION SELECT name, id FROM ctarget),"
    " conns AS (SELECT name, count(*) AS nconn FROM cids GROUP BY name),"
    " decided AS (SELECT name,"
    "  sum(decision = 'intercept') AS nint,"
    "  sum(decision = 'passthrough') AS npass"
    "  FROM ctarget GROUP BY name),"
    " protos AS (SELECT name, group_concat(protocol, ',') AS protocols"
    "  FROM (SELECT DISTINCT name, protocol FROM ctarget"
    "  WHERE protocol IS NOT NULL AND protocol <> ''"
    "  ORDER BY name, protocol) GROUP BY name),"
    /* How names were given to connections that asked for an address. */
    " named AS (SELECT name, group_concat(named_by, ',') AS named_by"
    "  FROM (SELECT DISTINCT name, named_by FROM stream_names"
    "  WHERE name IS NOT NULL ORDER BY name, named_by) GROUP BY name),"
    " pins AS (SELECT DISTINCT host AS name FROM learned_passthrough),"
    " portlist(name, port) AS ("
    "  SELECT host, port FROM requests WHERE port > 0"
    "  UNION SELECT name, port FROM ctarget WHERE port > 0),"
    " ports AS (SELECT name, group_concat(port, ',') AS ports FROM"
    "  (SELECT name, port FROM portlist ORDER BY name, port)"
    "  GROUP BY name),"
    " iplist(name, ip) AS (SELECT domain, ip FROM domain_ips"
    "  UNION SELECT host, server_ip FROM requests"
    "  WHERE server_ip IS NOT NULL AND server_ip <> ''"
    "  UNION SELECT name, ip FROM ctarget"
    "  WHERE ip IS NOT NULL AND ip <> ''),"
    " ips AS (SELECT name, group_concat(ip, ',') AS ips FROM"
    "  (SELECT name, ip FROM iplist ORDER BY name, ip) GROUP BY name)"
    " SELECT n.name AS name, n.first_us AS first_seen_us,"
    "  n.last_us AS last_seen_us,"
    "  coalesce(c.nconn, 0) AS connections,"
    "  coalesce(r.nreq, 0) AS requests,"
    "  coalesce(r.up, 0) AS bytes_up, coalesce(r.down, 0) AS bytes_down,"
    "  coalesce(p.ports, '') AS ports, coalesce(i.ips, '') AS ips,"
    "  coalesce(pr.protocols, '') AS protocols,"
    "  coalesce(d.nint, 0) AS intercepted,"
    "  coalesce(d.npass, 0) AS passed_through,"
    "  pn.name IS NOT NULL AS pinned,"
    "  coalesce(nb.named_by, '') AS named_by"
    " FROM names n"
    " LEFT JOIN req r ON r.name = n.name"
    " LEFT JOIN conns c ON c.name = n.name"
    " LEFT JOIN ports p ON p.name = n.name"
    " LEFT JOIN ips i ON i.name = n.name"
    " LEFT JOIN decided d ON d.name = n.name"
    " LEFT JOIN protos pr ON pr.name = n.name"
    " LEFT JOIN named nb ON nb.name = n.name"
    " LEFT JOIN pins pn ON pn.name = n.name;";

/* v4: a label for exchanges peephole recognises ("mmtls-shortlink"). */
static const char schema_step_v4[] =
    "ALTER TABLE requests ADD COLUMN label TEXT;";

/*
 * v5: a learned entry is a back-off, not a verdict. rejections counts the
 * refusals in a row, last_reason says the latest, and next_retry_us is when
 * the pair is intercepted again (0: the next connection). Entries from
 * before were verdicts that may have been wrong (a TLS 1.0 client, a CA not
 * yet trusted): they are retried at once, their count kept.
 */
static const char schema_step_v5[] =
    "ALTER TABLE learned_passthrough ADD COLUMN"
    " rejections INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE learned_passthrough ADD COLUMN last_reason TEXT;"
    "ALTER TABLE learned_passthrough ADD COLUMN"
    " next_retry_us INTEGER NOT NULL DEFAULT 0;"
    "UPDATE learned_passthrough SET rejections = max(count, 1),"
    " last_reason = reason;";

/*
 * v6: connection ids come from one counter in the file, advanced a block at
 * a time inside a write transaction, so every process writing the file
 * (run, replay, a second run) holds ids no other one holds. Starts past
 * every id a file written by an earlier version used.
 */
static const char schema_step_v6[] =
    "CREATE TABLE conn_ids (next INTEGER NOT NULL);"
    "INSERT INTO conn_ids (next) SELECT"
    " max(coalesce((SELECT max(id) FROM connections), 0),"
    " coalesce((SELECT max(conn_id) FROM requests), 0),"
    " coalesce((SELECT max(conn_id) FROM stream_events), 0)) + 1;";

/* v7: the answer's reason phrase as the origin sent it ("Fine Thanks"). */
static const char schema_step_v7[] =
    "ALTER TABLE requests ADD COLUMN resp_reason TEXT;";

/* v8: the origin TLS handshake's own duration (HAR's "ssl"); connect_us
 * keeps including it, as HAR's "connect" does. */
static const char schema_step_v8[] =
    "ALTER TABLE requests ADD COLUMN tls_us INTEGER;";

/*
 * v9: naming a connection that asked for a bare address, per client. Many
 * hosts share one CDN address, so "the name last seen for this IP" credited
 * connections to the wrong name. name_sightings keeps, per client, each
 * (name, address) that client was told or used: its DNS answers through
 * the proxy (proxy-dns), WeChat's app-dns answers, and its own connections
 * by name (sni, connect). stream_names credits a bare-address connection
 * with a name only when that client saw the name resolve to the address
 * shortly before (within the answer's TTL, at least 5 minutes); when
 * several names qualify it names none, says "ambiguous" and lists the
 * candidates. The catalogue counts inferred connections apart from the
 * ones that named the host themselves.
 */
static const char schema_step_v9_sightings[] =
    "CREATE TABLE name_sightings ("
    " client_ip TEXT NOT NULL, domain TEXT NOT NULL, ip TEXT NOT NULL,"
    " source TEXT NOT NULL, first_seen INTEGER, last_seen INTEGER,"
    " ttl INTEGER, count INTEGER NOT NULL DEFAULT 1,"
    " UNIQUE (client_ip, domain, ip, source));"
    "CREATE INDEX name_sightings_ip ON name_sightings(ip, client_ip);"
    "DROP VIEW domain_catalogue;"
    "DROP VIEW stream_names;"
    "CREATE VIEW stream_names AS WITH"
    " t(id, client, ip, sni, t_open) AS (SELECT id, client_ip,"
    "  CASE WHEN instr(target_host, ':') > 0"
    "   OR (target_host GLOB '*.*.*.*'"
    "   AND target_host NOT GLOB '*[^0-9.]*') THEN target_host"
    "  WHEN coalesce(target_host, '') = '' THEN nullif(server_ip, '')"
    "  END, nullif(sni, ''), t_accept_us FROM connections),"
    " cand(id, name, source, at) AS (SELECT t.id, s.domain, s.source,"
    "  s.last_seen FROM t JOIN name_sightings s ON s.ip = t.ip"
    "  AND s.client_ip = t.client"
    "  WHERE t.sni IS NULL AND s.domain <> s.ip"
    "  AND coalesce(s.first_seen, 0) <= coalesce(t.t_open, 0)"
    "  AND coalesce(t.t_open, 0) <= coalesce(s.last_seen, 0)"
    "   + max(coalesce(s.ttl, 0), 300) * 1000000),"
    " agg(id, n, names, name, source, at) AS (SELECT id,"
    "  count(DISTINCT name), group_concat(DISTINCT name), min(name),"
    "  group_concat(DISTINCT source), max(at) FROM cand GROUP BY id)"
    " SELECT t.id AS conn_id, t.ip AS ip,"
    "  CASE WHEN t.sni IS NOT NULL THEN t.sni"
    "   WHEN a.n = 1 THEN a.name END AS name,"
    "  CASE WHEN t.sni IS NOT NULL THEN 'sni' WHEN a.n = 1 THEN a.source"
    "   WHEN a.n > 1 THEN 'ambiguous' END AS named_by,"
    "  CASE WHEN t.sni IS NOT NULL THEN t.t_open ELSE a.at END"
    "   AS named_at_us,"
    "  CASE WHEN a.n > 1 THEN a.names END AS candidates"
    " FROM t LEFT JOIN agg a ON a.id = t.id WHERE t.ip IS NOT NULL;"
    /* every connection under each name it goes by: its target, its SNI
     * and, for a bare address, the name inferred for it (inferred = 1) */
    "CREATE VIEW name_conns AS"
    " SELECT target_host AS name, id, target_port AS port,"
    "  server_ip AS ip, protocol, decision, t_accept_us AS t_open,"
    "  t_close_us AS t_close, 0 AS inferred FROM connections"
    " UNION SELECT sni, id, target_port, server_ip, protocol, decision,"
    "  t_accept_us, t_close_us, 0 FROM connections"
    "  WHERE sni IS NOT NULL AND sni <> ''"
    " UNION SELECT n.name, c.id, c.target_port, c.server_ip, c.protocol,"
    "  c.decision, c.t_accept_us, c.t_close_us, 1"
    "  FROM stream_names n JOIN connections c ON c.id = n.conn_id"
    "  WHERE n.name IS NOT NULL AND n.named_by <> 'sni';";

static const char schema_step_v9_catalogue[] =
    "CREATE VIEW domain_catalogue AS WITH"
    " seen(name, t) AS ("
    "  SELECT host, t_start_us FROM requests"
    "  UNION ALL SELECT name, t_open FROM name_conns"
    "  UNION ALL SELECT name, t_close FROM name_conns"
    "  UNION ALL SELECT domain, first_seen FROM domain_ips"
    "  UNION ALL SELECT domain, last_seen FROM domain_ips"
    "  UNION ALL SELECT host, first_seen FROM learned_passthrough"
    "  UNION ALL SELECT host, last_seen FROM learned_passthrough),"
    " names AS (SELECT name, min(nullif(t, 0)) AS first_us,"
    "  max(nullif(t, 0)) AS last_us FROM seen"
    "  WHERE name IS NOT NULL AND name <> '' GROUP BY name),"
    " req AS (SELECT host AS name, count(*) AS nreq,"
    "  sum(coalesce(req_header_bytes, 0) + coalesce(req_body_size, 0))"
    "   AS up,"
    "  sum(coalesce(resp_header_bytes, 0) + coalesce(resp_body_size, 0))"
    "   AS down"
    "  FROM requests GROUP BY host),"
    " cids(name, cid) AS (SELECT host, conn_id FROM requests"
    "  UNION SELECT name, id FROM name_conns WHERE inferred = 0),"
    " conns AS (SELECT name, count(*) AS nconn FROM cids GROUP BY name),"
    " inf AS (SELECT name, count(DISTINCT id) AS ninf FROM name_conns"
    "  WHERE inferred = 1 GROUP BY name),"
    " decided AS (SELECT name,"
    "  sum(decision = 'intercept') AS nint,"
    "  sum(decision = 'passthrough') AS npass"
    "  FROM name_conns GROUP BY name),"
    " protos AS (SELECT name, group_concat(protocol, ',') AS protocols"
    "  FROM (SELECT DISTINCT name, protocol FROM name_conns"
    "  WHERE protocol IS NOT NULL AND protocol <> ''"
    "  ORDER BY name, protocol) GROUP BY name),"
    " named AS (SELECT name, group_concat(named_by, ',') AS named_by"
    "  FROM (SELECT DISTINCT name, named_by FROM stream_names"
    "  WHERE name IS NOT NULL ORDER BY name, named_by) GROUP BY name),"
    " pins AS (SELECT DISTINCT host AS name FROM learned_passthrough),"
    " portlist(name, port) AS ("
    "  SELECT host, port FROM requests WHERE port > 0"
    "  UNION SELECT name, port FROM name_conns WHERE port > 0),"
    " ports AS (SELECT name, group_concat(port, ',') AS ports FROM"
    "  (SELECT name, port FROM portlist ORDER BY name, port)"
    "  GROUP BY name),"
    " iplist(name, ip) AS (SELECT domain, ip FROM domain_ips"
    "  UNION SELECT host, server_ip FROM requests"
    "  WHERE server_ip IS NOT NULL AND server_ip <> ''"
    "  UNION SELECT name, ip FROM name_conns"
    "  WHERE ip IS NOT NULL AND ip <> ''),"
    " ips AS (SELECT name, group_concat(ip, ',') AS ips FROM"
    "  (SELECT name, ip FROM iplist ORDER BY name, ip) GROUP BY name)"
    " SELECT n.name AS name, n.first_us AS first_seen_us,"
    "  n.last_us AS last_seen_us,"
    "  coalesce(c.nconn, 0) AS connections,"
    "  coalesce(r.nreq, 0) AS requests,"
    "  coalesce(r.up, 0) AS bytes_up, coalesce(r.down, 0) AS bytes_down,"
    "  coalesce(p.ports, '') AS ports, coalesce(i.ips, '') AS ips,"
    "  coalesce(pr.protocols, '') AS protocols,"
    "  coalesce(d.nint, 0) AS intercepted,"
    "  coalesce(d.npass, 0) AS passed_through,"
    "  pn.name IS NOT NULL AS pinned,"
    "  coalesce(nb.named_by, '') AS named_by,"
    "  coalesce(f.ninf, 0) AS inferred"
    " FROM names n"
    " LEFT JOIN req r ON r.name = n.name"
    " LEFT JOIN conns c ON c.name = n.name"
    " LEFT JOIN inf f ON f.name = n.name"
    " LEFT JOIN ports p ON p.name = n.name"
    " LEFT JOIN ips i ON i.name = n.name"
    " LEFT JOIN decided d ON d.name = n.name"
    " LEFT JOIN protos pr ON pr.name = n.name"
    " LEFT JOIN named nb ON nb.name = n.name"
    " LEFT JOIN pins pn ON pn.name = n.name;";

/*
 * v10: HTTP/2 and WebSocket. A request row of an HTTP/2 exchange has its
 * client-leg stream id (NULL for HTTP/1), the origin leg's version when it
 * differs (up_version, "1.1" under an h2 client), the trailers of each
 * message, and how its stream ended when not cleanly (stream_end). A
 * connection has the protocol agreed on each leg by ALPN (alpn keeps the
 * list the client offered). ws_messages holds a WebSocket's messages,
 * idx in order within their request, payloads capped like bodies. Rows are
 * found by (conn_id, seq) when the messages are written.
 */
static const char schema_step_v10[] =
    "ALTER TABLE requests ADD COLUMN stream_id INTEGER;"
    "ALTER TABLE requests ADD COLUMN up_version TEXT;"
    "ALTER TABLE requests ADD COLUMN req_trailers TEXT;"
    "ALTER TABLE requests ADD COLUMN resp_trailers TEXT;"
    "ALTER TABLE requests ADD COLUMN stream_end TEXT;"
    "ALTER TABLE connections ADD COLUMN alpn_client TEXT;"
    "ALTER TABLE connections ADD COLUMN alpn_server TEXT;"
    "CREATE INDEX requests_conn_seq ON requests(conn_id, seq);"
    "CREATE TABLE ws_messages ("
    " id INTEGER PRIMARY KEY,"
    " request_id INTEGER NOT NULL REFERENCES requests(id),"
    " idx INTEGER NOT NULL, t_us INTEGER NOT NULL, dir INTEGER NOT NULL,"
    " opcode INTEGER NOT NULL, size INTEGER NOT NULL,"
    " wire_bytes INTEGER NOT NULL, compressed INTEGER NOT NULL,"
    " truncated INTEGER NOT NULL, payload BLOB,"
    " close_code INTEGER, close_reason TEXT, error TEXT);"
    "CREATE INDEX ws_messages_request ON ws_messages(request_id, idx);";

/*
 * v11: wseq, the order in which connections rows were written. A row is
 * written when its connection closes, but ids are handed out when they
 * open, so "rows past id N" misses a long connection that closes late;
 * the web UI's live feed follows wseq instead. Old rows take their id.
 */
static const char schema_step_v11[] =
    "ALTER TABLE connections ADD COLUMN wseq INTEGER;"
    "UPDATE connections SET wseq = id;"
    "CREATE INDEX connections_wseq ON connections(wseq);";

/*
 * v12: where the traffic goes (locality). resolver_answers keeps each
 * answer `peephole resolve-compare` got: one run of the command, the name,
 * which resolver ("system", "app-dns" for WeChat's logged answers, or
 * "ip:port"), A or AAAA, the address (NULL with a status for no answer)
 * and its TTL. traces and trace_hops keep `peephole trace`'s TCP
 * traceroutes: one row per endpoint traced, one per probe answered or
 * lost. tcp_samples holds TCP_INFO read every sample interval on both
 * legs of a relayed connection (side 0 the client's socket, 1 the
 * origin's), capped per connection like stream events.
 */
static const char schema_step_v12[] =
    "CREATE TABLE resolver_answers ("
    " id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL,"
    " t_us INTEGER NOT NULL, domain TEXT NOT NULL, resolver TEXT NOT NULL,"
    " qtype TEXT NOT NULL, ip TEXT, ttl INTEGER, status TEXT NOT NULL);"
    "CREATE INDEX resolver_answers_run ON resolver_answers(run_id, domain);"
    "CREATE TABLE traces ("
    " id INTEGER PRIMARY KEY, t_us INTEGER NOT NULL, ip TEXT NOT NULL,"
    " port INTEGER NOT NULL, domain TEXT, method TEXT NOT NULL,"
    " reached INTEGER NOT NULL DEFAULT 0, hops INTEGER, error TEXT);"
    "CREATE INDEX traces_ip ON traces(ip, port);"
    "CREATE TABLE trace_hops ("
    " trace_id INTEGER NOT NULL, ttl INTEGER NOT NULL,"
    " probe INTEGER NOT NULL, ip TEXT, rtt_us INTEGER, kind TEXT NOT NULL);"
    "CREATE INDEX trace_hops_trace ON trace_hops(trace_id, ttl, probe);"
    "CREATE TABLE tcp_samples ("
    " conn_id INTEGER NOT NULL, t_us INTEGER NOT NULL,"
    " side INTEGER NOT NULL, rtt_us INTEGER, rttvar_us INTEGER,"
    " snd_cwnd INTEGER, unacked INTEGER, bytes_in_flight INTEGER,"
    " retrans INTEGER, total_retrans INTEGER, delivery_rate INTEGER,"
    " bytes_acked INTEGER, bytes_received INTEGER);"
    "CREATE INDEX tcp_samples_conn ON tcp_samples(conn_id, t_us);"
    "ALTER TABLE connections ADD COLUMN tcp_samples_capped INTEGER;";

/* A step's SQL may come in parts: C99 promises string literals of 4095
 * bytes, no more. */
#define SCHEMA_STEP_PARTS 3

static const char *const schema_steps[][SCHEMA_STEP_PARTS] = {
    {schema_step_v1},                              /* 0 -> 1 */
    {schema_step_v2},                              /* 1 -> 2 */
    {schema_step_v3_columns, schema_step_v3_names, /* 2 -> 3 */
	schema_step_v3_catalogue},
    {schema_step_v4},                                     /* 3 -> 4 */
    {schema_step_v5},                                     /* 4 -> 5 */
    {schema_step_v6},                                     /* 5 -> 6 */
    {schema_step_v7},                                     /* 6 -> 7 */
    {schema_step_v8},                                     /* 7 -> 8 */
    {schema_step_v9_sightings, schema_step_v9_catalogue}, /* 8 -> 9 */
    {schema_step_v10},                                    /* 9 -> 10 */
    {schema_step_v11},                                    /* 10 -> 11 */
    {schema_step_v12},                                    /* 11 -> 12 */
};

_Static_assert(
    sizeof(schema_steps) / sizeof(schema_steps[0]) == STORE_SCHEMA_VERSION,
    "one migration step per schema version");

int
schema_version(struct sqlite3 *db, int *version, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		snprintf(err, errlen, "cannot read schema version: %s",
		    sqlite3_errmsg(db));
		goto fail;
	}
	*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
fail:
	sqlite3_finalize(st);
	return -1;
}

/* Run one step and record its version in the same transaction, so a crash
 * mid-step leaves the file at the previous version, not half-migrated. */
static int
schema_run_step(struct sqlite3 *db, int from, char *err, size_t errlen)
{
	char sql[64];
	char *msg = NULL;
	size_t k;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	for (k = 0; k < SCHEMA_STEP_PARTS && schema_steps[from][k] != NULL; k++)
		if (sqlite3_exec(db, schema_steps[from][k], NULL, NULL, &msg) !=
		    SQLITE_OK)
			goto fail;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", from + 1);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "schema migration %d -> %d failed: %s", from,
	    from + 1, msg != NULL ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	if (!sqlite3_get_autocommit(db))
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int
schema_migrate(struct sqlite3 *db, char *err, size_t errlen)
{
	int v;

	if (schema_version(db, &v, err, errlen) == -1)
		return -1;
	if (v > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen,
		    "database schema version %d is newer than this peephole "
		    "understands (%d); refusing to touch it",
		    v, STORE_SCHEMA_VERSION);
		return -1;
	}
	if (v < 0) {
		snprintf(
		    err, errlen, "database has invalid schema version %d", v);
		return -1;
	}
	for (; v < STORE_SCHEMA_VERSION; v++)
		if (schema_run_step(db, v, err, errlen) == -1)
			return -1;
	return 0;
}

int
schema_check_readable(struct sqlite3 *db, char *err, size_t errlen)
{
	int v;

	if (schema_version(db, &v, err, errlen) == -1)
		return -1;
	if (v > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen,
		    "database schema version %d is newer than this peephole "
		    "understands (%d)",
		    v, STORE_SCHEMA_VERSION);
		return -1;
	}
	if (v == 0) {
		snprintf(err, errlen, "not a peephole database (no schema)");
		return -1;
	}
	if (v < STORE_SCHEMA_VERSION) {
		snprintf(err, errlen,
		    "database schema version %d is older than this peephole's "
		    "(%d); run `peephole run` once to migrate it",
		    v, STORE_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}
