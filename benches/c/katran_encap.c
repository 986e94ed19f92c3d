// A Katran-like balancer hot path: TCP/UDP to a VIP is hashed over its 5-tuple onto a real
// server, counted per VIP, and encapsulated IP-in-IP (a new outer IPv4 header in front, made
// with bpf_xdp_adjust_head), then bounced out of the same port. Everything else passes.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define RING 64

struct vip_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct vip_meta {
	__u32 first; /* first ring slot of this VIP's reals */
	__u32 count;
};

struct stat {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RING);
	__type(key, __u32);
	__type(value, __u32); /* real server IPv4, network order */
} reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct stat);
} vip_stats SEC(".maps");

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static __always_inline __u32 jhash_mix(__u32 a, __u32 b, __u32 c)
{
	a -= c; a ^= (c << 4) | (c >> 28); c += b;
	b -= a; b ^= (a << 6) | (a >> 26); a += c;
	c -= b; c ^= (b << 8) | (b >> 24); b += a;
	return c ^ a ^ b;
}

SEC("xdp")
int katran_encap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct vip_key key = {};
	struct vip_meta *meta;
	__u16 sport = 0, dport = 0;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
		return XDP_PASS;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > data_end)
			return XDP_PASS;
		sport = tcp->source;
		dport = tcp->dest;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > data_end)
			return XDP_PASS;
		sport = udp->source;
		dport = udp->dest;
	} else {
		return XDP_PASS;
	}
	key.addr = ip->daddr;
	key.port = dport;
	key.proto = ip->protocol;
	meta = bpf_map_lookup_elem(&vips, &key);
	if (!meta || meta->count == 0)
		return XDP_PASS;

	__u32 h = jhash_mix(ip->saddr, ((__u32)sport << 16) | dport, ip->protocol);
	__u32 slot = (meta->first + h % meta->count) & (RING - 1);
	__u32 *real = bpf_map_lookup_elem(&reals, &slot);
	if (!real)
		return XDP_DROP;
	__u32 stat_key = meta->first & 63;
	struct stat *st = bpf_map_lookup_elem(&vip_stats, &stat_key);
	if (st) {
		st->packets++;
		st->bytes += data_end - data;
	}

	__u32 real_addr = *real;
	__u32 inner_saddr = ip->saddr;
	__u16 inner_len = bpf_ntohs(ip->tot_len);
	unsigned char smac[ETH_ALEN], dmac[ETH_ALEN];
	__builtin_memcpy(smac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(dmac, eth->h_dest, ETH_ALEN);

	if (bpf_xdp_adjust_head(ctx, 0 - (int)sizeof(struct iphdr)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	struct ethhdr *neth = data;
	struct iphdr *outer = (void *)(neth + 1);
	if ((void *)(outer + 1) > data_end)
		return XDP_DROP;
	/* Bounce: the new frame goes back where it came from, MACs swapped. */
	__builtin_memcpy(neth->h_source, dmac, ETH_ALEN);
	__builtin_memcpy(neth->h_dest, smac, ETH_ALEN);
	neth->h_proto = bpf_htons(ETH_P_IP);
	outer->version = 4;
	outer->ihl = 5;
	outer->tos = 0;
	outer->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
	outer->id = 0;
	outer->frag_off = 0;
	outer->ttl = 64;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->saddr = inner_saddr;
	outer->daddr = real_addr;
	__u32 sum = 0;
	__u16 *w = (__u16 *)outer;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	outer->check = csum_fold(sum);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
