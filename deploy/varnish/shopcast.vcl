vcl 4.1;

# shopcast CDN edge on Varnish (Debian varnish 7.1): a cache in front of the
# shopcast origin that turns many LL-HLS viewers into about one origin
# request per part and playlist version. See docs/cdn.md.
#
# Templated: replace ${EDGE_ORIGIN_HOST} and ${EDGE_ORIGIN_PORT} (the shopcast
# HTTP address), e.g.
#
#   EDGE_ORIGIN_HOST=10.0.0.5 EDGE_ORIGIN_PORT=8080 \
#     envsubst '${EDGE_ORIGIN_HOST} ${EDGE_ORIGIN_PORT}' \
#     < shopcast.vcl > /etc/varnish/shopcast.vcl
#   varnishd -F -a :80 -f /etc/varnish/shopcast.vcl -s malloc,256m
#
# e2e/cdn_test.go runs this file as is, with the placeholders set.
#
# Request collapsing is Varnish's own: concurrent misses on one object wait
# on its waiting list while one fetch goes to the origin, and are woken when
# the response headers are in (no polling step, unlike nginx's
# proxy_cache_lock). Age is set by Varnish on every delivery.

backend origin {
    .host = "${EDGE_ORIGIN_HOST}";
    .port = "${EDGE_ORIGIN_PORT}";
    .connect_timeout = 2s;
    # The origin holds a blocking playlist request up to 3 target durations
    # (6 s at the default 2 s) before it answers: wait well past that.
    .first_byte_timeout = 20s;
    .between_bytes_timeout = 20s;
}

sub vcl_recv {
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
