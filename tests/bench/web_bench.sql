-- A synthetic capture for the web UI bench (web_bench.mjs): :flows HTTP
-- exchanges over :flows / 4 connections, one every ~40 ms, to a few dozen
-- hosts with a realistic mix of methods, paths, statuses, types, sizes and
-- timings (about 1 in 100 failed without an answer, some HTTP/2 and a few
-- WebSocket upgrades), plus a few hundred failed TLS connections and
-- passed-through streams with no request row.
--
-- (In SQLite || binds tighter than % and /: arithmetic inside a
-- concatenation is in parentheses.)
--
-- Run on a file whose schema `peephole run` has just created:
--   sqlite3 -cmd ".parameter set :flows 100000" F < web_bench.sql
-- Deterministic: the same :flows gives the same rows. No bodies are stored.

PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
BEGIN;

CREATE TEMP TABLE hosts(k INTEGER PRIMARY KEY, name TEXT, ip TEXT,
	scheme TEXT, port INTEGER, h2 INTEGER);
INSERT INTO hosts(k, name, ip, scheme, port, h2) VALUES
	(0, 'api.example.com', '93.184.216.34', 'https', 443, 1),
	(1, 'www.example.com', '93.184.216.34', 'https', 443, 1),
	(2, 'cdn.jsdelivr.net', '151.101.1.229', 'https', 443, 1),
	(3, 'fonts.gstatic.com', '142.250.74.67', 'https', 443, 1),
	(4, 'www.google-analytics.com', '142.250.74.78', 'https', 443, 1),
	(5, 'graph.facebook.com', '157.240.27.18', 'https', 443, 1),
	(6, 'api.github.com', '140.82.121.6', 'https', 443, 0),
	(7, 'objects.githubusercontent.com', '185.199.108.133', 'https', 443, 1),
	(8, 'registry.npmjs.org', '104.16.3.35', 'https', 443, 1),
	(9, 'deb.debian.org', '151.101.2.132', 'http', 80, 0),
	(10, 'security.debian.org', '151.101.66.132', 'http', 80, 0),
	(11, 'update.googleapis.com', '142.250.74.99', 'https', 443, 1),
	(12, 'clients4.google.com', '142.250.74.110', 'https', 443, 1),
	(13, 'telemetry.example.net', '203.0.113.10', 'https', 443, 0),
	(14, 'ws.chat.example.org', '203.0.113.20', 'https', 443, 0),
	(15, 'img.shop.example', '198.51.100.7', 'https', 443, 1),
	(16, 'shop.example', '198.51.100.5', 'https', 443, 1),
	(17, 'auth.shop.example', '198.51.100.6', 'https', 443, 0),
	(18, 'localhost', '127.0.0.1', 'http', 8000, 0),
	(19, 'api.weather.example', '192.0.2.44', 'https', 443, 0),
	(20, 'mqtt.iot.example', '192.0.2.80', 'http', 8080, 0),
	(21, 'static.wikimedia.org', '185.15.59.224', 'https', 443, 1),
	(22, 'en.wikipedia.org', '185.15.59.224', 'https', 443, 1),
	(23, 'ocsp.digicert.com', '192.229.211.108', 'http', 80, 0);

-- Connections: four exchanges each, hosts skewed towards the first ones.
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c
	WHERE i < (:flows + 3) / 4),
cc AS (SELECT i, (i * 2654435761) % 4294967296 AS h FROM c)
INSERT INTO connections(id, listener, client_ip, client_port, target_host,
	target_port, server_ip, server_port, protocol, t_accept_us,
	t_first_byte_us, t_close_us, bytes_from_client, bytes_to_client,
	bytes_to_server, bytes_from_server, nrequests, close_reason, sni, alpn,
	decision, decision_reason, tls_client, tls_server)
SELECT i, 'http', '127.0.0.1', 32768 + i % 28000, x.name, x.port, x.ip,
	x.port, CASE x.scheme WHEN 'https' THEN 'tls' ELSE 'http' END,
	1796000000000000 + i * 160000, 1796000000000000 + i * 160000 + 300,
	1796000000000000 + i * 160000 + 150000, 2000 + h % 9000,
	20000 + h % 400000, 1500 + h % 8000, 20000 + h % 400000, 4,
	CASE h % 5 WHEN 0 THEN 'server-eof' ELSE 'client-eof' END,
	CASE x.scheme WHEN 'https' THEN x.name END,
	CASE WHEN x.scheme = 'https' AND x.h2 THEN 'h2'
		WHEN x.scheme = 'https' THEN 'http/1.1' END,
	CASE x.scheme WHEN 'https' THEN 'intercept' ELSE 'plain' END,
	CASE x.scheme WHEN 'https' THEN 'rule' END,
	CASE x.scheme WHEN 'https' THEN 'TLSv1.3 TLS_AES_128_GCM_SHA256' END,
	CASE x.scheme WHEN 'https' THEN 'TLSv1.3 TLS_AES_256_GCM_SHA384' END
FROM cc JOIN hosts x ON x.k = (CASE WHEN h % 3 = 0 THEN h % 6
	ELSE (h / 7) % 24 END);

-- Exchanges: request r is the ((r - 1) % 4 + 1)-th on connection
-- (r + 3) / 4, 40 ms apart, with a few ms of jitter.
WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r
	WHERE i < :flows),
rr AS (SELECT i, (i * 2246822519) % 4294967296 AS h FROM r)
INSERT INTO requests(id, conn_id, seq, t_start_us, client_ip, scheme, method,
	host, port, path, query, req_version, resp_version, status, req_headers,
	resp_headers, req_header_bytes, resp_header_bytes, req_body_size,
	resp_body_size, content_type, server_ip, server_port, upstream_reused,
	dns_us, connect_us, tls_us, ttfb_us, total_us, error, replay_of,
	resp_reason, stream_id, label)
SELECT i, c.id, (i - 1) % 4 + 1,
	c.t_accept_us + ((i - 1) % 4) * 40000 + h % 5000, '127.0.0.1',
	x.scheme,
	CASE WHEN x.k = 14 AND (i - 1) % 4 = 0 THEN 'GET'
		WHEN h % 100 < 78 THEN 'GET' WHEN h % 100 < 93 THEN 'POST'
		WHEN h % 100 < 96 THEN 'PUT' WHEN h % 100 < 98 THEN 'OPTIONS'
		ELSE 'DELETE' END,
	x.name, x.port,
	CASE h % 10
		WHEN 0 THEN '/api/v1/items/' || ((h / 10) % 99991)
		WHEN 1 THEN '/api/v1/users/' || ((h / 10) % 4999) || '/orders'
		WHEN 2 THEN '/static/js/app.' || printf('%08x', h / 13) || '.js'
		WHEN 3 THEN '/static/css/site.' || printf('%06x', h % 999983)
			|| '.css'
		WHEN 4 THEN '/images/products/' || ((h / 10) % 20000) || '.webp'
		WHEN 5 THEN '/graphql'
		WHEN 6 THEN '/collect'
		WHEN 7 THEN '/v2/search'
		WHEN 8 THEN '/'
		ELSE '/debian/dists/bookworm/main/binary-amd64/Packages.xz' END,
	CASE h % 10
		WHEN 6 THEN 'v=2&tid=UA-' || (h % 99999) || '&cid=' || h
		WHEN 7 THEN 'q=item+' || ((h / 10) % 5000) || '&page=' || (h % 20)
		END,
	CASE WHEN x.scheme = 'https' AND x.h2 THEN '2' ELSE '1.1' END,
	CASE WHEN h % 100 = 99 THEN NULL
		WHEN x.scheme = 'https' AND x.h2 THEN '2' ELSE '1.1' END,
	CASE WHEN h % 100 = 99 THEN NULL
		WHEN x.k = 14 AND (i - 1) % 4 = 0 THEN 101
		WHEN h % 100 < 80 THEN 200 WHEN h % 100 < 86 THEN 304
		WHEN h % 100 < 89 THEN 204 WHEN h % 100 < 92 THEN 301
		WHEN h % 100 < 96 THEN 404 WHEN h % 100 < 98 THEN 403
		ELSE 500 END,
	'Host: ' || x.name || char(13, 10) ||
		'User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench' ||
		char(13, 10) || 'Accept: */*' || char(13, 10) ||
		'Accept-Encoding: gzip, br' || char(13, 10),
	CASE WHEN h % 100 = 99 THEN NULL ELSE
		'Content-Type: application/json' || char(13, 10) ||
		'Cache-Control: max-age=60' || char(13, 10) END,
	180 + h % 600, CASE WHEN h % 100 = 99 THEN NULL ELSE 150 + h % 400 END,
	CASE WHEN h % 100 BETWEEN 78 AND 95 THEN 100 + h % 20000 ELSE 0 END,
	CASE WHEN h % 100 = 99 THEN NULL
		WHEN h % 100 BETWEEN 80 AND 88 THEN 0
		WHEN h % 10 = 4 THEN 5000 + h % 400000
		WHEN h % 10 = 9 THEN 1000000 + h % 9000000
		ELSE 50 + (h / 3) % 60000 END,
	CASE WHEN h % 100 = 99 THEN NULL
		WHEN h % 10 IN (0, 1, 5, 7) THEN 'application/json'
		WHEN h % 10 = 2 THEN 'text/javascript'
		WHEN h % 10 = 3 THEN 'text/css'
		WHEN h % 10 = 4 THEN 'image/webp'
		WHEN h % 10 = 6 THEN 'image/gif'
		WHEN h % 10 = 8 THEN 'text/html; charset=utf-8'
		ELSE 'application/x-xz' END,
	x.ip, x.port, CASE WHEN (i - 1) % 4 = 0 THEN 0 ELSE 1 END,
	CASE WHEN (i - 1) % 4 = 0 THEN 200 + h % 30000 END,
	CASE WHEN (i - 1) % 4 = 0 THEN 500 + h % 80000 END,
	CASE WHEN (i - 1) % 4 = 0 AND x.scheme = 'https'
		THEN 3000 + h % 60000 END,
	CASE WHEN h % 100 = 99 THEN NULL ELSE 800 + h % 300000 END,
	CASE WHEN h % 100 = 99 THEN 10000000 ELSE 1500 + h % 900000 END,
	CASE WHEN h % 100 = 99 THEN
		CASE h % 3 WHEN 0 THEN 'upstream: connection refused'
			WHEN 1 THEN 'upstream: timed out'
			ELSE 'client closed before the answer' END END,
	0,
	CASE WHEN h % 100 = 99 THEN NULL
		WHEN x.k = 14 AND (i - 1) % 4 = 0 THEN 'Switching Protocols'
		WHEN h % 100 < 80 THEN 'OK' WHEN h % 100 < 86 THEN 'Not Modified'
		WHEN h % 100 < 89 THEN 'No Content'
		WHEN h % 100 < 92 THEN 'Moved Permanently'
		WHEN h % 100 < 96 THEN 'Not Found'
		WHEN h % 100 < 98 THEN 'Forbidden'
		ELSE 'Internal Server Error' END,
	CASE WHEN x.scheme = 'https' AND x.h2 THEN 2 * ((i - 1) % 4) + 1 END,
	CASE WHEN h % 997 = 0 THEN 'bench-label' END
FROM rr JOIN connections c ON c.id = (rr.i + 3) / 4
	JOIN hosts x ON x.name = c.target_host;

-- A few messages on each WebSocket upgrade.
WITH RECURSIVE m(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM m WHERE k < 4)
INSERT INTO ws_messages(request_id, idx, t_us, dir, opcode, size, wire_bytes,
	compressed, truncated, payload)
SELECT r.id, m.k, r.t_start_us + 10000 * (m.k + 1), m.k % 2, 1, 20, 26, 0,
	0, CAST('{"type":"ping","n":' || m.k || '}' AS BLOB)
FROM requests r, m WHERE r.status = 101;

-- Connections that are not exchanges: failed TLS and passed-through
-- streams, one per 250 exchanges (10 s apart, inside the exchanges' span,
-- so the newest row of the list is still exchange :flows), ids after the
-- others.
WITH RECURSIVE f(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM f
	WHERE i < :flows / 250),
base(n) AS (SELECT (:flows + 3) / 4)
INSERT INTO connections(id, listener, client_ip, client_port, target_host,
	target_port, server_ip, server_port, protocol, t_accept_us,
	t_first_byte_us, t_close_us, bytes_from_client, bytes_to_client,
	bytes_to_server, bytes_from_server, nrequests, close_reason, error,
	sni, decision, decision_reason)
SELECT n + i, 'http', '127.0.0.1', 40000 + i,
	CASE i % 2 WHEN 0 THEN 'pinned.bank.example' ELSE 'mmtls.wechat.example'
		END, CASE i % 2 WHEN 0 THEN 443 ELSE 8080 END, '198.51.100.99',
	CASE i % 2 WHEN 0 THEN 443 ELSE 8080 END,
	CASE i % 2 WHEN 0 THEN 'tls' ELSE 'tcp' END,
	1796000000000000 + i * 10000000 - 5000000,
	1796000000000000 + i * 10000000 - 4999800,
	1796000000000000 + i * 10000000 - 4100000, 517, 4000, 517, 4000, 0,
	CASE i % 2 WHEN 0 THEN 'client-tls-error' ELSE 'client-eof' END,
	CASE i % 2 WHEN 0 THEN 'client rejected the certificate: unknown ca'
		END,
	CASE i % 2 WHEN 0 THEN 'pinned.bank.example' END,
	CASE i % 2 WHEN 0 THEN 'intercept' ELSE 'passthrough' END,
	CASE i % 2 WHEN 0 THEN 'rule' ELSE 'not tls' END
FROM f, base;

UPDATE conn_ids SET next = (SELECT max(id) + 1 FROM connections);
COMMIT;
