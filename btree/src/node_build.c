/*
 * node_build.c — nodes built from others: split (choosing the point, truncating the
 * separator) and merge.
 *
 * Like node_write.c, for pages the caller holds exclusively (the structure mtrs of smo.c,
 * redo of a split) or private buffers.
 *
 * Plan, then write: split_prepare and merge_prepare work out the separator, the new
 * prefixes and the bytes each resulting node needs, and refuse (PBOX_EINVAL, PBOX_ENOSPC,
 * PBOX_ECORRUPT) before anything is written, so on a node that verifies an error leaves the
 * input unchanged. Split shrinks the left node in place (the moved entries become dead, the
 * longer prefix is cut off the front of every remaining suffix) and builds the right node in
 * the caller's buffer; merge builds the result in a scratch page, because a shorter common
 * prefix makes every left suffix longer, and copies it over the left node at the end. Built
 * nodes get their entries appended in key order, so their slots are sorted by construction.
 */
#include "node_int.h"

#include <pbox/alloc.h>

#include <errno.h>
#include <string.h>

/* ---- building (split, merge) ------------------------------------------------------------------- */

/* Append an entry after the last slot of a node being built (keys arrive in order). The key
 * is pre ++ sfx; the node's prefix is dropped from its front. */
static int append(uint8_t *n, hdr *h, const uint8_t *pre, uint32_t prelen, const uint8_t *sfx,
		  uint32_t sfxlen, const uint8_t *pl, uint32_t plen, uint32_t sflags)
{
	uint32_t p = h->prefix, a_len, b_len;
	const uint8_t *a, *b;
	if (p <= prelen) {
		a = pre + p;
		a_len = prelen - p;
		b = sfx;
		b_len = sfxlen;
	} else {
		if (p - prelen > sfxlen)
			return PBOX_ECORRUPT;
		a = NULL;
		a_len = 0;
		b = sfx + (p - prelen);
		b_len = sfxlen - (p - prelen);
	}
	uint32_t klen = a_len + b_len, elen = klen + plen;
	if (h->heap - slot_end(h) < SLOT + elen || h->count >= UINT16_MAX)
		return PBOX_ENOSPC;
	slot s = { .klen = klen, .plen = plen, .flags = sflags };
	s.off = heap_alloc(h, elen);
	uint8_t *e = n + s.off;
	ldcopy(e, a, a_len);
	ldcopy(e + a_len, b, b_len);
	ldcopy(e + klen, pl, plen);
	s.head = head_page(e, klen);
	slot_store(n, h->count, &s);
	h->count++;
	return 0;
}

/* Write the separator for a leaf split between keys a < b (given as the node prefix pre[0..p)
 * followed by their suffixes) into sep; returns its length: the shortest s with a <= s < b.
 * With c = the length of their common prefix (rules of pbox__bt_node_split in node.h):
 *   1. |a| <= c + 1: s = a (no shorter string is >= a and < b);
 *   2. |b| >  c + 1: s = b[0, c+1);
 *   3. |b| == c + 1 < |a|, so b = a[0, c) + b[c] with b[c] > a[c]:
 *      a. b[c] >= a[c] + 2: s = a[0, c) + (a[c] + 1);
 *      b. otherwise s starts with a[0, c+1) and is the shortest string >= a with that start:
 *         a[0, j) + (a[j] + 1) for the first j > c with a[j] != 0xff and j + 1 < |a|,
 *         else a itself.
 * The result is at most max(|a|, |b|) <= the key limit bytes long. */
static uint32_t make_sep(const uint8_t *pre, uint32_t p, const uint8_t *as, uint32_t al,
			 const uint8_t *bs, uint32_t bl, uint8_t *sep)
{
	uint32_t c = p + lcp_page(as, al, bs, bl);
	uint32_t alen = p + al, blen = p + bl, len;
	ldcopy(sep, pre, p);
	if (alen <= c + 1 || blen > c + 1) {
		const uint8_t *src = alen <= c + 1 ? as : bs;
		len = alen <= c + 1 ? alen : c + 1;
		ldcopy(sep + p, src, len - p);
		return len;
	}
	ldcopy(sep + p, as, al); /* a, then shortened below */
	if (sep[c] + 2u <= ld8(bs + (c - p))) {
		sep[c]++;
		return c + 1;
	}
	for (uint32_t j = c + 1; j + 1 < alen; j++) {
		if (sep[j] != 0xff) {
			sep[j]++;
			return j + 1;
		}
	}
	return alen;
}

/* A split of a node at nl, worked out before anything changes: the separator, the new
 * prefixes, and the bytes each half will need. */
typedef struct split_plan {
	uint32_t slen;        /* separator length (bytes in the caller's buffer) */
	uint32_t first_right; /* first slot that moves right: nl (leaf) or nl + 1 (inner) */
	uint32_t pl, pr;      /* new prefix of the left and of the right node */
	uint64_t lneed, rneed;
	pbox_pid left_upper;  /* inner: the left node's new upper child */
} split_plan;

static int split_prepare(const uint8_t *n, const hdr *h, uint32_t nl, uint8_t *sep,
			 split_plan *sp)
{
	bool leaf = h->kind == PBOX_BT_NODE_LEAF;
	uint32_t cnt = h->count, P = h->prefix;
	const uint8_t *pre = prefix_bytes(n, h);
	int rc;
	if (leaf ? (nl < 1 || nl >= cnt) : nl >= cnt)
		return PBOX_EINVAL;
	sp->left_upper = 0;
	if (leaf) {
		slot a, b;
		if ((rc = slot_load(n, h, nl - 1, &a)) || (rc = slot_load(n, h, nl, &b)))
			return rc;
		sp->slen = make_sep(pre, P, n + a.off, a.klen, n + b.off, b.klen, sep);
		sp->first_right = nl;
	} else {
		slot m;
		if ((rc = slot_load(n, h, nl, &m)))
			return rc;
		if (m.plen != 8)
			return PBOX_ECORRUPT;
		sp->slen = P + m.klen;
		ldcopy(sep, pre, P);
		ldcopy(sep + P, n + m.off, m.klen);
		sp->left_upper = ld64(n + m.off + m.klen);
		if (!pid_ok(sp->left_upper))
			return PBOX_ECORRUPT;
		sp->first_right = nl + 1;
	}
	uint32_t slen = sp->slen;
	/* The separator lies strictly inside the fences: lower < sep < upper (on a valid node
	 * it does: a leaf separator is >= key(nl-1) and < key(nl), an inner one is a key). */
	if ((!lo_inf(h) && cmp_key_fence(n, sep, slen, h->lo_off, h->lo_len) <= 0) ||
	    (!hi_inf(h) && cmp_key_fence(n, sep, slen, h->hi_off, h->hi_len) >= 0))
		return PBOX_ECORRUPT;
	/* Prefixes: both new fence pairs lie within the old ones, so they only grow. */
	sp->pl = lo_inf(h) ? 0 : lcp_page(n + h->lo_off, h->lo_len, sep, slen);
	sp->pr = hi_inf(h) ? 0 : lcp_page(n + h->hi_off, h->hi_len, sep, slen);
	if (sp->pl < P || sp->pr < P)
		return PBOX_ECORRUPT;
	sp->lneed = HDR + (uint64_t)h->lo_len + slen;
	sp->rneed = HDR + (uint64_t)slen + h->hi_len;
	for (uint32_t i = 0; i < cnt; i++) {
		slot s;
		if ((rc = slot_load(n, h, i, &s)))
			return rc;
		if (i < nl) {
			if (s.klen < sp->pl - P)
				return PBOX_ECORRUPT;
			sp->lneed += SLOT + s.klen - (sp->pl - P) + s.plen;
		} else if (i >= sp->first_right) {
			if (s.klen < sp->pr - P)
				return PBOX_ECORRUPT;
			sp->rneed += SLOT + s.klen - (sp->pr - P) + s.plen;
		}
	}
	if (sp->lneed > h->ns || sp->rneed > h->ns)
		return PBOX_ENOSPC;
	return 0;
}

/* Can the node be split at nl (on a node whose header loaded)? */
static bool split_feasible(const uint8_t *n, const hdr *h, uint32_t nl)
{
	uint8_t sep[PBOX_BT_KEY_MAX_ANY];
	split_plan sp;
	return split_prepare(n, h, nl, sep, &sp) == 0;
}

uint32_t pbox__bt_node_split_choose(const void *page, uint32_t ps, uint32_t insert_pos)
{
	hdr h;
	if (hdr_load(page, ps, &h))
		return 0;
	const uint8_t *n = cnode(page);
	bool leaf = h.kind == PBOX_BT_NODE_LEAF;
	uint32_t cnt = h.count;
	if (cnt < (leaf ? 2u : 1u))
		return 0;
	uint32_t lo = leaf ? 1 : 0, hi = cnt - 1; /* valid nl range */
	if (insert_pos >= cnt && split_feasible(n, &h, hi))
		return hi;
	/* The middle by bytes: the first nl whose left part holds half of the entry bytes. */
	uint64_t total = 0, acc = 0;
	for (uint32_t i = 0; i < cnt; i++) {
		slot s;
		if (slot_load(n, &h, i, &s))
			return 0;
		total += SLOT + s.klen + s.plen;
	}
	uint32_t mid = cnt;
	for (uint32_t i = 0; i < cnt && mid == cnt; i++) {
		slot s;
		(void)slot_load(n, &h, i, &s);
		acc += SLOT + s.klen + s.plen;
		if (2 * acc >= total)
			mid = i + 1;
	}
	if (mid < lo)
		mid = lo;
	if (mid > hi)
		mid = hi;
	/* Within the limits the middle always fits (each half at most half the entries plus
	 * one entry, and two fences: see the limits in node.h); look around it anyway. */
	for (uint32_t dist = 0; dist <= hi - lo; dist++) {
		if (mid >= lo + dist && split_feasible(n, &h, mid - dist))
			return mid - dist;
		if (mid + dist <= hi && split_feasible(n, &h, mid + dist))
			return mid + dist;
	}
	return mid;
}

int pbox__bt_node_split(void *left, void *right, uint32_t ps, uint32_t nl, void *sep,
			uint32_t *sep_len)
{
	hdr h;
	int rc = hdr_load(left, ps, &h);
	if (rc)
		return rc;
	if (!right || right == left || !sep || !sep_len)
		return PBOX_EINVAL;
	uint8_t *n = wnode(left);
	uint8_t *sb = sep;
	split_plan sp;
	if ((rc = split_prepare(n, &h, nl, sb, &sp)))
		return rc;
	bool leaf = h.kind == PBOX_BT_NODE_LEAF;
	uint32_t cnt = h.count, P = h.prefix, slen = sp.slen;
	const uint8_t *pre = prefix_bytes(n, &h);

	/* 1. The right node: (sep, upper], slots [first_right, cnt). */
	rc = pbox__bt_node_init(right, ps, h.kind, sb, slen, hi_inf(&h) ? NULL : n + h.hi_off,
				h.hi_len, leaf ? 0 : ld64(n + H_UPPER));
	if (rc)
		return rc == PBOX_EINVAL ? PBOX_ECORRUPT : rc;
	uint8_t *rn = wnode(right);
	hdr rh;
	if ((rc = hdr_load(right, ps, &rh)))
		return rc;
	for (uint32_t i = sp.first_right; i < cnt; i++) {
		slot s;
		(void)slot_load(n, &h, i, &s); /* checked by split_prepare */
		rc = append(rn, &rh, pre, P, n + s.off, s.klen, n + s.off + s.klen, s.plen,
			    s.flags);
		if (rc)
			return rc == PBOX_ENOSPC ? PBOX_ECORRUPT : rc;
	}
	hdr_store(rn, &rh);
	hints_rebuild(rn, rh.count);

	/* 2. Shrink the left node in place to (lower, sep], slots [0, nl): the moved entries
	 * and the old upper fence become dead, the longer prefix is cut off the front of
	 * every remaining suffix (offset + d, length - d), then the new upper fence goes in. */
	uint32_t d = sp.pl - P;
	for (uint32_t i = nl; i < cnt; i++) {
		slot s;
		(void)slot_load(n, &h, i, &s);
		h.dead += s.klen + s.plen;
	}
	if (!leaf)
		st64(n + H_UPPER, sp.left_upper);
	h.dead += h.hi_len;
	h.hi_off = 0;
	h.hi_len = 0;
	h.flags |= F_HI_INF; /* for compaction: no upper fence piece until the new one */
	h.count = nl;
	for (uint32_t i = 0; i < nl && d; i++) {
		slot s;
		(void)slot_load(n, &h, i, &s);
		s.klen -= d;
		h.dead += d;
		s.off = s.klen + s.plen ? s.off + d : h.ns;
		s.head = head_page(n + s.off, s.klen);
		slot_store(n, i, &s);
	}
	h.prefix = sp.pl;
	if (h.heap - slot_end(&h) < slen) {
		if ((rc = pbox__bt_node_compact_heap(n, &h)))
			return rc;
		if (h.heap - slot_end(&h) < slen) /* lneed <= NS says it cannot happen */
			return PBOX_ECORRUPT;
	}
	h.flags &= ~F_HI_INF;
	h.hi_len = slen;
	h.hi_off = heap_alloc(&h, slen);
	memcpy(n + h.hi_off, sb, slen);
	hdr_store(n, &h);
	hints_rebuild(n, nl);
	*sep_len = slen;
	return 0;
}

/* Everything merge needs: both headers and the size of the result. */
typedef struct merge_plan {
	hdr l, r;
	uint32_t prefix; /* of the result */
} merge_plan;

static int merge_prepare(const void *left, const void *right, uint32_t ps, merge_plan *m)
{
	int rc = hdr_load(left, ps, &m->l);
	if (rc)
		return rc;
	if ((rc = hdr_load(right, ps, &m->r)))
		return rc;
	if (left == right || m->l.kind != m->r.kind || hi_inf(&m->l) || lo_inf(&m->r))
		return PBOX_EINVAL;
	const uint8_t *ln = cnode(left), *rn = cnode(right);
	if (m->l.hi_len != m->r.lo_len ||
	    ldcmp(ln + m->l.hi_off, rn + m->r.lo_off, m->l.hi_len) != 0)
		return PBOX_EINVAL;
	uint32_t p = 0;
	if (!lo_inf(&m->l) && !hi_inf(&m->r)) {
		const uint8_t *a = ln + m->l.lo_off, *b = rn + m->r.hi_off;
		uint32_t mm = min_u32(m->l.lo_len, m->r.hi_len);
		while (p < mm && ld8(a + p) == ld8(b + p))
			p++;
		if (cmp_page(a, m->l.lo_len, b, m->r.hi_len) >= 0)
			return PBOX_ECORRUPT;
	}
	/* lower(l) <= upper(l) = lower(r) <= upper(r): the LCP can only shrink. */
	if (p > m->l.prefix || p > m->r.prefix)
		return PBOX_ECORRUPT;
	m->prefix = p;

	uint64_t need = HDR + (uint64_t)m->l.lo_len + m->r.hi_len;
	uint32_t nslots = m->l.count + m->r.count;
	const hdr *hs[2] = { &m->l, &m->r };
	const uint8_t *ns[2] = { ln, rn };
	for (int k = 0; k < 2; k++) {
		for (uint32_t i = 0; i < hs[k]->count; i++) {
			slot s;
			if ((rc = slot_load(ns[k], hs[k], i, &s)))
				return rc;
			need += SLOT + (hs[k]->prefix - p) + s.klen + s.plen;
		}
	}
	if (m->l.kind == PBOX_BT_NODE_INNER) { /* the separator slot */
		if (m->l.hi_len < p)
			return PBOX_ECORRUPT;
		need += SLOT + (m->l.hi_len - p) + 8;
		nslots++;
	}
	if (need > m->l.ns || nslots > UINT16_MAX)
		return PBOX_ENOSPC;
	return 0;
}

int pbox__bt_node_merge_check(const void *left, const void *right, uint32_t ps)
{
	merge_plan m;
	return merge_prepare(left, right, ps, &m);
}

/* Append every slot of a source node to the node being built. */
static int append_all(uint8_t *dn, hdr *dh, const uint8_t *sn, const hdr *sh)
{
	for (uint32_t i = 0; i < sh->count; i++) {
		slot s;
		int rc = slot_load(sn, sh, i, &s);
		if (rc)
			return rc;
		rc = append(dn, dh, prefix_bytes(sn, sh), sh->prefix, sn + s.off, s.klen,
			    sn + s.off + s.klen, s.plen, s.flags);
		if (rc)
			return rc == PBOX_ENOSPC ? PBOX_ECORRUPT : rc;
	}
	return 0;
}

int pbox__bt_node_merge(void *left, const void *right, uint32_t ps)
{
	merge_plan m;
	int rc = merge_prepare(left, right, ps, &m);
	if (rc)
		return rc;
	const uint8_t *ln = cnode(left), *rn = cnode(right);
	bool inner = m.l.kind == PBOX_BT_NODE_INNER;
	uint8_t *tmp = pbox_malloc(ps);
	if (!tmp)
		return -ENOMEM;
	rc = pbox__bt_node_init(tmp, ps, m.l.kind, lo_inf(&m.l) ? NULL : ln + m.l.lo_off,
				m.l.lo_len, hi_inf(&m.r) ? NULL : rn + m.r.hi_off, m.r.hi_len,
				inner ? ld64(rn + H_UPPER) : 0);
	uint8_t *tn = wnode(tmp);
	hdr th;
	if (!rc)
		rc = hdr_load(tmp, ps, &th);
	if (!rc && th.prefix != m.prefix)
		rc = PBOX_ECORRUPT;
	if (!rc)
		rc = append_all(tn, &th, ln, &m.l);
	if (!rc && inner) {
		uint8_t child[8];
		memcpy(child, ln + H_UPPER, 8);
		rc = append(tn, &th, ln + m.l.hi_off, m.l.hi_len, NULL, 0, child, 8, 0);
		if (rc == PBOX_ENOSPC)
			rc = PBOX_ECORRUPT;
	}
	if (!rc)
		rc = append_all(tn, &th, rn, &m.r);
	if (!rc) {
		hdr_store(tn, &th);
		hints_rebuild(tn, th.count);
		memcpy(wnode(left), tn, m.l.ns);
	}
	pbox_free(tmp);
	return rc == PBOX_EINVAL ? PBOX_ECORRUPT : rc;
}
