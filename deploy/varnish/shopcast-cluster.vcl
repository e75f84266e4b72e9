vcl 4.1;

# shopcast CDN edge on Varnish (Debian varnish 7.1) in front of a
# three-node shopcast cluster (docs/cluster.md): the same cache as
# shopcast.vcl, with a round-robin director over the nodes. Any node serves
# any stream (a node that does not own it proxies to the owner), so there
# are no sticky sessions: request collapsing is per object, whatever the
# backend, and the owner sees about one request per part and playlist
# version per edge. A node that fails its probe (/readyz) leaves the
# rotation.
#
# Templated: replace ${EDGE_ORIGIN1_HOST} ${EDGE_ORIGIN1_PORT} and the same
# for 2 and 3 (the nodes' HTTP addresses), e.g. with envsubst as in
# shopcast.vcl. e2e/cluster/varnish_test.go runs this file with the
# placeholders set.

import directors;

probe ready {
    .url = "/readyz";
    .interval = 1s;
    .timeout = 1s;
    .window = 3;
    .threshold = 2;
}

backend node1 {
    .host = "${EDGE_ORIGIN1_HOST}";
    .port = "${EDGE_ORIGIN1_PORT}";
    .connect_timeout = 2s;
    # A blocking playlist request is held up to 3 target durations.
    .first_byte_timeout = 20s;
    .between_bytes_timeout = 20s;
    .probe = ready;
}

backend node2 {
    .host = "${EDGE_ORIGIN2_HOST}";
    .port = "${EDGE_ORIGIN2_PORT}";
    .connect_timeout = 2s;
    .first_byte_timeout = 20s;
    .between_bytes_timeout = 20s;
    .probe = ready;
}

backend node3 {
    .host = "${EDGE_ORIGIN3_HOST}";
    .port = "${EDGE_ORIGIN3_PORT}";
    .connect_timeout = 2s;
    .first_byte_timeout = 20s;
    .between_bytes_timeout = 20s;
    .probe = ready;
}

sub vcl_init {
    new shopcast = directors.round_robin();
    shopcast.add_backend(node1);
    shopcast.add_backend(node2);
    shopcast.add_backend(node3);
}

sub vcl_recv {
    # Any node serves any stream: spread the fetches over the three.
    set req.backend_hint = shopcast.backend();
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # Only stream files are cached; the cue API, pages and metrics are not.
    if (req.url !~ "^/live/") {
        return (pass);
    }
    # No cookies: stream files are the same for everyone, and the built-in
    # vcl_recv would not cache a request that has one.
    unset req.http.Cookie;
    # The hash is the built-in one: req.url, the whole query included
    # (_HLS_msn, _HLS_part and _HLS_skip name different playlists, RFC
    # 8216bis 6.2.5.2), and the Host.
    return (hash);
}

sub vcl_backend_response {
    unset beresp.http.Set-Cookie;
    if (bereq.uncacheable) {
        return (deliver);
    }
    # Errors (400, 405, 5xx) come with "no-store". The built-in VCL then
    # marks the URL hit-for-miss for 120 s: every request for it goes to the
    # origin, uncollapsed, for two minutes; for stream.m3u8 that is every
    # new viewer. Keep the mark one second instead: the waiting viewers
    # still go to the origin in parallel (not one by one), and a second
    # later the URL is collapsed again.
    if (beresp.ttl <= 0s || beresp.http.Cache-Control ~ "(?i)no-cache|no-store|private" || beresp.http.Vary == "*") {
        set beresp.ttl = 1s;
        set beresp.grace = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # The TTL is the origin's Cache-Control (origin/cache.go): parts,
    # segments and blocking playlists 6 target durations, plain playlists
    # 1 s. Varnish would by default also serve an expired object for 10 s of
    # grace while it refetches; the origin allows no stale playlists (it
    # sends no stale-while-revalidate), so there is no grace unless it does.
    if (beresp.http.Cache-Control !~ "stale-while-revalidate") {
        set beresp.grace = 0s;
    }
}

sub vcl_deliver {
    # For debugging: whether this delivery was a hit.
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
