/*
 * floor_lb.c - a do-nothing stateless SIP "load balancer" for the benchmark floor.
 *
 * Together with the shared do-nothing responder (shared/bench/ideal/ideal_sip.c) it
 * shows what two processes that only pass SIP datagrams over one UDP hop cost in
 * CPU per REGISTER flow and per call (see bench/floor/README.md). It is NOT a SIP
 * proxy: no transaction state, no dialog state, no checks beyond what routing needs.
 *
 *            public socket (-l)                     internal socket (-i)
 *   UAC/UAS <------------------> floor_lb <-----------------------------> responder (-p)
 *
 *   request on the public socket    -> own Via (internal address) pushed as the first
 *                                      header, Record-Route (public address, ;lr) added
 *                                      to INVITE, own entry removed from the top of the
 *                                      first Route header, sent to the responder (-p)
 *                                      from the internal socket
 *   request on the internal socket  -> (only from the responder) own Via (public
 *      from the responder              address) pushed, sent to the UAS (-u) from the
 *                                      public socket
 *   response whose top Via is ours  -> that Via popped, sent to the next Via's sent-by
 *                                      (received= / rport= honoured): to the responder
 *                                      from the internal socket, anywhere else from the
 *                                      public socket
 *   anything else                   -> dropped
 *
 * A request whose top Via sent-by differs from its source address, or that asks for
 * ;rport, gets ;received=/;rport= stamped on that Via. Branches are derived from the
 * incoming top branch (FNV-1a), so retransmissions, ACKs of non-2xx and CANCELs map
 * to the same branch. Max-Forwards is not touched: the next hop of each side is fixed
 * and must not be one of our own sockets (checked at start), so no loop through us.
 *
 * recvmmsg/sendmmsg in batches on both sockets, poll() over the two. Every loop is
 * bounded: the main loop by -t seconds and -n datagrams, the header walk by a fixed
 * header count, the parameter walks by the line length and a fixed count, and the
 * send retries by a count. Only 127.0.0.0/8 addresses are accepted anywhere.
 *
 * usage: floor_lb -l PUB_IP:PORT -i INT_IP:PORT -p RESPONDER_IP:PORT -u UAS_IP:PORT
 *                 [-t MAX_SECS] [-n MAX_MSGS] [-q]
 * Counters go to stderr at exit (SIGTERM/SIGINT, -t or -n).
 *
 * build: gcc -O2 -Wall -Wextra -o floor_lb floor_lb.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    NBATCH = 64,          /* datagrams per recvmmsg / sendmmsg */
    BUFSZ = 8192,         /* largest datagram accepted */
    OUTSZ = BUFSZ + 512,  /* room for our Via, Record-Route, received/rport */
    HDR_LIMIT = 100,      /* header lines looked at per message */
    PARAM_LIMIT = 24,     /* ;params looked at per Via value */
    ROUNDS_PER_POLL = 8,  /* recvmmsg batches per socket before polling again */
    SEND_TRIES = 16,
};

enum { SIDE_PUB = 0, SIDE_INT = 1 };

/* one header line, possibly with continuation lines */
struct line {
    const char *at;   /* first byte of the header name */
    int len;          /* up to (not including) the final line end */
    int span;         /* including the final line end */
    const char *val;  /* first byte of the value */
};

struct sipmsg {
    const char *data, *stop;      /* whole datagram */
    const char *hdrs;             /* first header line */
    int start_len, start_span;    /* request / status line */
    struct line via1, via2, route;
    int have_via1, have_via2, have_route;
};

/* ------------------------------------------------------------------ configuration */
static struct sockaddr_in a_pub, a_int, a_resp, a_uas;
static char via_pub[64], via_int[64]; /* "SIP/2.0/UDP 127.0.0.1:5060" */
static int via_pub_n, via_int_n;
static char rr_hdr[96];               /* "Record-Route: <sip:127.0.0.1:5060;lr>\r\n" */
static int rr_hdr_n;
static char own_uri[64];              /* "<sip:127.0.0.1:5060" */
static int own_uri_n;

static volatile sig_atomic_t stop_flag;

static unsigned long long n_in, n_out, n_req_up, n_req_down, n_rsp, n_drop, n_senderr,
    n_stamped, n_route_strip;

/* ------------------------------------------------------------------ small helpers */
static int is_lws(char c) { return c == ' ' || c == '\t'; }

static int same_addr(const struct sockaddr_in *x, const struct sockaddr_in *y)
{
    return x->sin_addr.s_addr == y->sin_addr.s_addr && x->sin_port == y->sin_port;
}

static int loopback(const struct in_addr *ia) { return (ntohl(ia->s_addr) >> 24) == 127; }

/* "a.b.c.d:port" -> sockaddr, loopback only */
static int read_hostport(const char *arg, struct sockaddr_in *sa)
{
    char host[INET_ADDRSTRLEN];
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof host)
        return -1;
    memcpy(host, arg, (size_t)(colon - arg));
    host[colon - arg] = '\0';
    char *endp;
    long port = strtol(colon + 1, &endp, 10);
    if (*endp || port < 1 || port > 65535)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1 || !loopback(&sa->sin_addr))
        return -1;
    return 0;
}

static int fmt_hostport(char *dst, size_t cap, const struct sockaddr_in *sa)
{
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa->sin_addr, host, sizeof host);
    return snprintf(dst, cap, "%s:%u", host, (unsigned)ntohs(sa->sin_port));
}

/* bounded output buffer */
struct obuf {
    char *p, *lim;
    int bad;
};

static void emit(struct obuf *o, const void *src, size_t n)
{
    if (o->bad || n > (size_t)(o->lim - o->p)) {
        o->bad = 1;
        return;
    }
    memcpy(o->p, src, n);
    o->p += n;
}
#define EMIT_LIT(o, s) emit((o), (s), sizeof(s) - 1)

/* ------------------------------------------------------------------ parsing */
/* header name [p, p+n) equals one of the two spellings (case-insensitive) */
static int name_is(const char *p, int n, const char *full, const char *compact)
{
    int fl = (int)strlen(full);
    if (n == fl && !strncasecmp(p, full, (size_t)fl))
        return 1;
    return compact && n == 1 && (p[0] | 0x20) == compact[0];
}

/* Walk the headers once, remembering the first two Via header lines and the first
 * Route header line. Returns 0 when the blank line ending the headers was found. */
static int scan(const char *data, int size, struct sipmsg *m)
{
    const char *p = data, *stop = data + size;
    memset(m, 0, sizeof *m);
    m->data = data;
    m->stop = stop;
    const char *nl = memchr(p, '\n', (size_t)size);
    if (!nl)
        return -1;
    m->start_span = (int)(nl + 1 - p);
    m->start_len = (int)(nl - p) - (nl > p && nl[-1] == '\r');
    p = nl + 1;
    m->hdrs = p;
    for (int i = 0; i < HDR_LIMIT && p < stop; i++) {
        nl = memchr(p, '\n', (size_t)(stop - p));
        if (!nl)
            return -1;
        int len = (int)(nl - p) - (nl > p && nl[-1] == '\r');
        if (len == 0)
            return 0;
        struct line ln = {p, len, (int)(nl + 1 - p), NULL};
        /* folded continuation lines belong to this header */
        for (int k = 0; k < 8 && nl + 1 < stop && is_lws(nl[1]); k++) {
            const char *nx = memchr(nl + 1, '\n', (size_t)(stop - nl - 1));
            if (!nx)
                return -1;
            nl = nx;
            ln.len = (int)(nl - p) - (nl[-1] == '\r');
            ln.span = (int)(nl + 1 - p);
        }
        const char *colon = memchr(p, ':', (size_t)len);
        if (!colon)
            return -1;
        int nlen = (int)(colon - p);
        while (nlen > 0 && is_lws(p[nlen - 1]))
            nlen--;
        const char *v = colon + 1;
        while (v < p + ln.len && is_lws(*v))
            v++;
        ln.val = v;
        if (name_is(p, nlen, "Via", "v")) {
            if (!m->have_via1) {
                m->via1 = ln;
                m->have_via1 = 1;
            } else if (!m->have_via2) {
                m->via2 = ln;
                m->have_via2 = 1;
            }
        } else if (!m->have_route && name_is(p, nlen, "Route", NULL)) {
            m->route = ln;
            m->have_route = 1;
        }
        p = nl + 1;
    }
    return -1;
}

/* End of the first value of a (possibly comma-folded) Via value [v, lim). */
static const char *via_value_end(const char *v, const char *lim)
{
    const char *c = memchr(v, ',', (size_t)(lim - v));
    const char *e = c ? c : lim;
    while (e > v && is_lws(e[-1]))
        e--;
    return e;
}

/* Look for ";name" in the params of one Via value [v, lim).
 * Returns 1 when found; *val, *vlen = its value (vlen 0 when there is none),
 * *semi_at (if not NULL) = the ';' that starts it, *p_end = first byte after it. */
static int via_param_at(const char *v, const char *lim, const char *name, const char **val, int *vlen,
                        const char **semi_at, const char **p_end)
{
    size_t nn = strlen(name);
    const char *p = v;
    for (int i = 0; i < PARAM_LIMIT; i++) {
        const char *semi = memchr(p, ';', (size_t)(lim - p));
        if (!semi)
            return 0;
        p = semi + 1;
        if (semi_at)
            *semi_at = semi;
        while (p < lim && is_lws(*p))
            p++;
        if ((size_t)(lim - p) < nn || strncasecmp(p, name, nn))
            continue;
        const char *q = p + nn;
        while (q < lim && is_lws(*q))
            q++;
        if (q < lim && *q != '=' && *q != ';')
            continue; /* a longer name with the same start */
        *val = NULL;
        *vlen = 0;
        if (q < lim && *q == '=') {
            q++;
            while (q < lim && is_lws(*q))
                q++;
            const char *e = q;
            while (e < lim && *e != ';' && !is_lws(*e))
                e++;
            *val = q;
            *vlen = (int)(e - q);
            q = e;
        }
        if (p_end)
            *p_end = q;
        return 1;
    }
    return 0;
}

static int via_param(const char *v, const char *lim, const char *name, const char **val, int *vlen)
{
    return via_param_at(v, lim, name, val, vlen, NULL, NULL);
}

/* sent-by of one Via value "SIP/2.0/UDP host[:port];..." -> address (not loopback-checked).
 * *after = first byte after the sent-by. */
static int via_sent_by(const char *v, const char *lim, struct sockaddr_in *sa, const char **after)
{
    const char *h = memchr(v, ' ', (size_t)(lim - v));
    if (!h)
        return -1;
    while (h < lim && is_lws(*h))
        h++;
    const char *he = h;
    while (he < lim && *he != ':' && *he != ';' && !is_lws(*he))
        he++;
    unsigned port = 5060;
    const char *e = he;
    if (e < lim && *e == ':') {
        port = 0;
        e++;
        for (int k = 0; k < 5 && e < lim && *e >= '0' && *e <= '9'; k++, e++)
            port = port * 10 + (unsigned)(*e - '0');
    }
    char host[INET_ADDRSTRLEN];
    int hl = (int)(he - h);
    if (hl <= 0 || hl >= (int)sizeof host || port == 0 || port > 65535)
        return -1;
    memcpy(host, h, (size_t)hl);
    host[hl] = '\0';
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return -1;
    *after = e;
    return 0;
}

/* where a response goes next: sent-by of the Via value, overridden by received=/rport= */
static int via_next_hop(const char *v, const char *lim, struct sockaddr_in *dst)
{
    const char *after;
    if (via_sent_by(v, lim, dst, &after))
        return -1;
    const char *pv;
    int pn;
    if (via_param(after, lim, "received", &pv, &pn) && pn > 0) {
        char host[INET_ADDRSTRLEN];
        if (pn >= (int)sizeof host)
            return -1;
        memcpy(host, pv, (size_t)pn);
        host[pn] = '\0';
        if (inet_pton(AF_INET, host, &dst->sin_addr) != 1)
            return -1;
    }
    if (via_param(after, lim, "rport", &pv, &pn) && pn > 0) {
        unsigned port = 0;
        for (int k = 0; k < pn; k++) {
            if (k >= 5 || pv[k] < '0' || pv[k] > '9')
                return -1;
            port = port * 10 + (unsigned)(pv[k] - '0');
        }
        if (port == 0 || port > 65535)
            return -1;
        dst->sin_port = htons((uint16_t)port);
    }
    return loopback(&dst->sin_addr) ? 0 : -1;
}

/* top Via value starts with our sent-by (either socket) */
static int via_is_ours(const struct line *ln)
{
    const char *v = ln->val, *lim = ln->at + ln->len;
    int n = (int)(lim - v);
    const char *cand[2] = {via_pub, via_int};
    int cn[2] = {via_pub_n, via_int_n};
    for (int i = 0; i < 2; i++) {
        if (n >= cn[i] && !memcmp(v, cand[i], (size_t)cn[i]) &&
            (n == cn[i] || v[cn[i]] == ';' || v[cn[i]] == ',' || is_lws(v[cn[i]])))
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ branch */
static uint64_t fnv1a(const char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* "z9hG4bK" + side letter + 16 hex digits, derived from the incoming top branch
 * (or from the whole top Via value when it has no branch) */
static int make_branch(const struct line *top, int side, char out[32])
{
    const char *lim = via_value_end(top->val, top->at + top->len);
    const char *bv;
    int bn;
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)(side + 1);
    if (via_param(top->val, lim, "branch", &bv, &bn) && bn > 0)
        h = fnv1a(bv, (size_t)bn, h);
    else
        h = fnv1a(top->val, (size_t)(lim - top->val), h);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "z9hG4bK", 7);
    out[7] = side == SIDE_PUB ? 'f' : 'g';
    for (int i = 0; i < 16; i++)
        out[8 + i] = hex[(h >> (60 - 4 * i)) & 0xf];
    return 24;
}

/* ------------------------------------------------------------------ forwarding */
/* A region of the input replaced on output, in header order. */
struct patch {
    const char *at;
    int span;
    int kind; /* 1 = stamp received/rport on the top Via, 2 = strip our Route entry */
};

/* stamped top Via: value with its ";rport" dropped, then ;received=;rport= appended */
static void emit_stamped_via(struct obuf *o, const struct line *ln, const struct sockaddr_in *src)
{
    const char *lim = ln->at + ln->len;
    const char *vend = via_value_end(ln->val, lim);
    const char *rv;
    int rn;
    const char *cut = NULL, *cut_end = NULL;
    if (!via_param_at(ln->val, vend, "rport", &rv, &rn, &cut, &cut_end))
        cut = NULL; /* an existing ;rport (bare or not) is replaced by ours */
    if (cut) {
        emit(o, ln->at, (size_t)(cut - ln->at));
        emit(o, cut_end, (size_t)(vend - cut_end));
    } else {
        emit(o, ln->at, (size_t)(vend - ln->at));
    }
    char tmp[64];
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &src->sin_addr, host, sizeof host);
    int tn = snprintf(tmp, sizeof tmp, ";received=%s;rport=%u", host, (unsigned)ntohs(src->sin_port));
    emit(o, tmp, (size_t)tn);
    emit(o, vend, (size_t)(ln->at + ln->span - vend)); /* rest of the line (folded values), line end */
}

/* our Route entry at the top of the first Route header: keep the other entries */
static void emit_stripped_route(struct obuf *o, const struct line *ln)
{
    const char *lim = ln->at + ln->len;
    const char *gt = memchr(ln->val, '>', (size_t)(lim - ln->val));
    const char *rest = gt ? gt + 1 : lim;
    while (rest < lim && is_lws(*rest))
        rest++;
    if (rest < lim && *rest == ',') {
        rest++;
        while (rest < lim && is_lws(*rest))
            rest++;
        if (rest < lim) {
            EMIT_LIT(o, "Route: ");
            emit(o, rest, (size_t)(ln->at + ln->span - rest));
        }
    }
    /* only entry: the whole header goes */
}

static int route_top_is_ours(const struct line *ln)
{
    const char *lim = ln->at + ln->len;
    int n = (int)(lim - ln->val);
    return n > own_uri_n && !memcmp(ln->val, own_uri, (size_t)own_uri_n) &&
           (ln->val[own_uri_n] == ';' || ln->val[own_uri_n] == '>');
}

/* push our Via (+ Record-Route) and copy the rest with the patches applied */
static int forward_request(const struct sipmsg *m, const struct sockaddr_in *src, int side,
                           int add_rr, char *out)
{
    struct obuf o = {out, out + OUTSZ, 0};
    struct patch pt[2];
    int np = 0;

    /* received/rport wanted? */
    const char *vlim = via_value_end(m->via1.val, m->via1.at + m->via1.len);
    struct sockaddr_in sb;
    const char *after, *rv;
    int rn;
    int bare_rport = via_param(m->via1.val, vlim, "rport", &rv, &rn) && rn == 0;
    int differs = via_sent_by(m->via1.val, vlim, &sb, &after) || !same_addr(&sb, src);
    if (bare_rport || differs) {
        pt[np++] = (struct patch){m->via1.at, m->via1.span, 1};
        n_stamped++;
    }
    if (side == SIDE_PUB && m->have_route && route_top_is_ours(&m->route)) {
        pt[np++] = (struct patch){m->route.at, m->route.span, 2};
        n_route_strip++;
    }
    if (np == 2 && pt[1].at < pt[0].at) {
        struct patch t = pt[0];
        pt[0] = pt[1];
        pt[1] = t;
    }

    char br[32];
    int bn = make_branch(&m->via1, side, br);
    emit(&o, m->data, (size_t)m->start_len);
    EMIT_LIT(&o, "\r\nVia: ");
    if (side == SIDE_PUB)
        emit(&o, via_int, (size_t)via_int_n);
    else
        emit(&o, via_pub, (size_t)via_pub_n);
    EMIT_LIT(&o, ";branch=");
    emit(&o, br, (size_t)bn);
    EMIT_LIT(&o, "\r\n");
    if (add_rr)
        emit(&o, rr_hdr, (size_t)rr_hdr_n);

    const char *cur = m->hdrs;
    for (int i = 0; i < np; i++) {
        emit(&o, cur, (size_t)(pt[i].at - cur));
        if (pt[i].kind == 1)
            emit_stamped_via(&o, &m->via1, src);
        else
            emit_stripped_route(&o, &m->route);
        cur = pt[i].at + pt[i].span;
    }
    emit(&o, cur, (size_t)(m->stop - cur)); /* other headers, blank line, body */
    return o.bad ? -1 : (int)(o.p - out);
}

/* pop our top Via; *dst = where the next Via says to send it */
static int forward_response(const struct sipmsg *m, char *out, struct sockaddr_in *dst)
{
    if (!via_is_ours(&m->via1))
        return -1;
    struct obuf o = {out, out + OUTSZ, 0};
    const char *lim = m->via1.at + m->via1.len;
    const char *comma = memchr(m->via1.val, ',', (size_t)(lim - m->via1.val));
    emit(&o, m->data, (size_t)(m->via1.at - m->data));
    if (comma) { /* "Via: ours, next, ..." -> "Via: next, ..." */
        const char *nx = comma + 1;
        while (nx < lim && is_lws(*nx))
            nx++;
        if (nx >= lim || via_next_hop(nx, via_value_end(nx, lim), dst))
            return -1;
        EMIT_LIT(&o, "Via: ");
        emit(&o, nx, (size_t)(m->via1.at + m->via1.span - nx));
    } else {
        if (!m->have_via2)
            return -1;
        const char *l2 = m->via2.at + m->via2.len;
        if (via_next_hop(m->via2.val, via_value_end(m->via2.val, l2), dst))
            return -1;
    }
    const char *rest = m->via1.at + m->via1.span;
    emit(&o, rest, (size_t)(m->stop - rest));
    return o.bad ? -1 : (int)(o.p - out);
}

/* One datagram in -> at most one out. Returns the length and sets *dst / *out_side,
 * or -1 to drop it. */
static int route_one(const char *data, int size, int in_side, const struct sockaddr_in *src,
                     char *out, struct sockaddr_in *dst, int *out_side)
{
    struct sipmsg m;
    if (scan(data, size, &m) || !m.have_via1 || m.start_len < 12)
        return -1;
    if (!memcmp(data, "SIP/2.0 ", 8)) {
        int n = forward_response(&m, out, dst);
        if (n < 0)
            return -1;
        *out_side = same_addr(dst, &a_resp) ? SIDE_INT : SIDE_PUB;
        n_rsp++;
        return n;
    }
    /* request line must end in " SIP/2.0" */
    if (memcmp(data + m.start_len - 8, " SIP/2.0", 8))
        return -1;
    if (in_side == SIDE_PUB) {
        int invite = !memcmp(data, "INVITE ", 7);
        int n = forward_request(&m, src, SIDE_PUB, invite, out);
        if (n < 0)
            return -1;
        *dst = a_resp;
        *out_side = SIDE_INT;
        n_req_up++;
        return n;
    }
    if (!same_addr(src, &a_resp))
        return -1; /* internal side: requests only from the responder */
    int n = forward_request(&m, src, SIDE_INT, 0, out);
    if (n < 0)
        return -1;
    *dst = a_uas;
    *out_side = SIDE_PUB;
    n_req_down++;
    return n;
}

/* ------------------------------------------------------------------ I/O */
static char rx_buf[NBATCH][BUFSZ];
static char tx_buf[NBATCH][OUTSZ];
static struct sockaddr_in rx_from[NBATCH], tx_to[NBATCH];
static struct iovec rx_iov[NBATCH], tx_iov[NBATCH];
static struct mmsghdr rx_msg[NBATCH];
static struct mmsghdr tx_q[2][NBATCH];

static int open_socket(const struct sockaddr_in *sa, const char *what)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("socket");
        return -1;
    }
    /* no SO_REUSEADDR: a port someone else holds must fail, not share traffic */
    int sz = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz))
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (bind(fd, (const struct sockaddr *)sa, sizeof *sa)) {
        char hp[32];
        fmt_hostport(hp, sizeof hp, sa);
        fprintf(stderr, "floor_lb: bind %s socket %s: %s\n", what, hp, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void flush_queue(int fd, struct mmsghdr *q, int n)
{
    int done = 0;
    for (int t = 0; done < n && t < SEND_TRIES; t++) {
        int r = sendmmsg(fd, q + done, (unsigned)(n - done), 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            n_senderr++;
            done++; /* give up on the datagram at the head */
            continue;
        }
        done += r;
        n_out += (unsigned long long)r;
    }
    if (done < n)
        n_senderr += (unsigned long long)(n - done);
}

/* one recvmmsg batch from fd; returns datagrams read (0 = nothing waiting) */
static int pump(const int fds[2], int side)
{
    for (int i = 0; i < NBATCH; i++) {
        rx_iov[i].iov_base = rx_buf[i];
        rx_iov[i].iov_len = BUFSZ;
        memset(&rx_msg[i].msg_hdr, 0, sizeof rx_msg[i].msg_hdr);
        rx_msg[i].msg_hdr.msg_name = &rx_from[i];
        rx_msg[i].msg_hdr.msg_namelen = sizeof rx_from[i];
        rx_msg[i].msg_hdr.msg_iov = &rx_iov[i];
        rx_msg[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fds[side], rx_msg, NBATCH, MSG_DONTWAIT, NULL);
    if (n <= 0)
        return 0;
    int nq[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        n_in++;
        int len = (int)rx_msg[i].msg_len;
        if (len <= 0 || len >= BUFSZ || (rx_msg[i].msg_hdr.msg_flags & MSG_TRUNC) ||
            rx_from[i].sin_family != AF_INET || !loopback(&rx_from[i].sin_addr)) {
            n_drop++;
            continue;
        }
        int oside;
        int ol = route_one(rx_buf[i], len, side, &rx_from[i], tx_buf[i], &tx_to[i], &oside);
        if (ol <= 0) {
            n_drop++;
            continue;
        }
        tx_iov[i].iov_base = tx_buf[i];
        tx_iov[i].iov_len = (size_t)ol;
        struct mmsghdr *h = &tx_q[oside][nq[oside]++];
        memset(h, 0, sizeof *h);
        h->msg_hdr.msg_name = &tx_to[i];
        h->msg_hdr.msg_namelen = sizeof tx_to[i];
        h->msg_hdr.msg_iov = &tx_iov[i];
        h->msg_hdr.msg_iovlen = 1;
    }
    for (int s = 0; s < 2; s++)
        if (nq[s])
            flush_queue(fds[s], tx_q[s], nq[s]);
    return n;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s -l PUB_IP:PORT -i INT_IP:PORT -p RESPONDER_IP:PORT -u UAS_IP:PORT\n"
            "          [-t MAX_SECS] [-n MAX_MSGS] [-q]   (127.0.0.0/8 addresses only)\n",
            argv0);
}

int main(int argc, char **argv)
{
    const char *s_pub = NULL, *s_int = NULL, *s_resp = NULL, *s_uas = NULL;
    double max_secs = 3600;
    unsigned long long max_msgs = 2000000000ULL;
    int quiet = 0, c;
    while ((c = getopt(argc, argv, "l:i:p:u:t:n:q")) != -1) {
        switch (c) {
        case 'l': s_pub = optarg; break;
        case 'i': s_int = optarg; break;
        case 'p': s_resp = optarg; break;
        case 'u': s_uas = optarg; break;
        case 't': max_secs = atof(optarg); break;
        case 'n': max_msgs = strtoull(optarg, NULL, 10); break;
        case 'q': quiet = 1; break;
        default: usage(argv[0]); return 2;
        }
    }
    if (!s_pub || !s_int || !s_resp || !s_uas || read_hostport(s_pub, &a_pub) ||
        read_hostport(s_int, &a_int) || read_hostport(s_resp, &a_resp) || read_hostport(s_uas, &a_uas)) {
        usage(argv[0]);
        return 2;
    }
    if (same_addr(&a_pub, &a_int) || same_addr(&a_resp, &a_pub) || same_addr(&a_resp, &a_int) ||
        same_addr(&a_uas, &a_pub) || same_addr(&a_uas, &a_int) || same_addr(&a_uas, &a_resp)) {
        fprintf(stderr, "floor_lb: -l, -i, -p and -u must be four different addresses\n");
        return 2;
    }
    if (!(max_secs > 0) || max_secs > 86400)
        max_secs = 3600;

    char hp[32];
    fmt_hostport(hp, sizeof hp, &a_pub);
    via_pub_n = snprintf(via_pub, sizeof via_pub, "SIP/2.0/UDP %s", hp);
    own_uri_n = snprintf(own_uri, sizeof own_uri, "<sip:%s", hp);
    rr_hdr_n = snprintf(rr_hdr, sizeof rr_hdr, "Record-Route: <sip:%s;lr>\r\n", hp);
    fmt_hostport(hp, sizeof hp, &a_int);
    via_int_n = snprintf(via_int, sizeof via_int, "SIP/2.0/UDP %s", hp);

    int fds[2];
    fds[SIDE_PUB] = open_socket(&a_pub, "public");
    if (fds[SIDE_PUB] < 0)
        return 1;
    fds[SIDE_INT] = open_socket(&a_int, "internal");
    if (fds[SIDE_INT] < 0)
        return 1;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!quiet)
        fprintf(stderr, "floor_lb: public %s, internal %s, responder %s, uas %s, max %.0f s / %llu datagrams\n",
                s_pub, s_int, s_resp, s_uas, max_secs, max_msgs);

    struct pollfd pfd[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    double deadline = now_s() + max_secs;
    while (!stop_flag && n_in < max_msgs && now_s() < deadline) {
        int r = poll(pfd, 2, 250);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            break;
        }
        if (r == 0)
            continue;
        /* drain both sockets in turns, a bounded number of batches each */
        int ready[2] = {!!(pfd[0].revents & POLLIN), !!(pfd[1].revents & POLLIN)};
        for (int round = 0; round < ROUNDS_PER_POLL && (ready[0] || ready[1]); round++) {
            for (int s = 0; s < 2; s++)
                if (ready[s] && pump(fds, s) < NBATCH)
                    ready[s] = 0;
        }
    }
    if (!quiet)
        fprintf(stderr,
                "floor_lb: in %llu out %llu | requests pub->responder %llu responder->uas %llu | "
                "responses %llu | via stamped %llu, route stripped %llu | dropped %llu send errors %llu\n",
                n_in, n_out, n_req_up, n_req_down, n_rsp, n_stamped, n_route_strip, n_drop, n_senderr);
    close(fds[0]);
    close(fds[1]);
    return 0;
}
