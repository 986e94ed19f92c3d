// Exercises bpf-to-bpf calls: the parser, the flow hash and the counter update are separate
// functions (never inlined), with the flow key in the caller's frame passed by pointer, packet
// pointers passed as arguments, and a map updated from a callee. Frames whose flow hash is
// 0 mod 4 are dropped; slot hash % 4 of `buckets` counts packets and bytes.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct flow {
	__u32 src;
	__u32 dst;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct counter);
} buckets SEC(".maps");

static __attribute__((noinline)) int parse(void *data, void *data_end, struct flow *f)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *l4;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl != 5)
		return -1;
	f->src = ip->saddr;
	f->dst = ip->daddr;
	f->proto = ip->protocol;
	if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
		return 0;
	l4 = (void *)(ip + 1);
	if ((void *)(l4 + 1) > data_end)
		return 0;
	f->sport = l4->source;
	f->dport = l4->dest;
	return 0;
}

static __attribute__((noinline)) __u32 mix(__u32 h, __u32 v)
{
	h ^= v;
	h *= 0x9e3779b1;
	return h ^ (h >> 15);
}

static __attribute__((noinline)) __u32 flow_hash(const struct flow *f)
{
	__u32 h = mix(0x12345678, f->src);

	h = mix(h, f->dst);
	h = mix(h, ((__u32)f->sport << 16) | f->dport);
	return mix(h, f->proto);
}

static __attribute__((noinline)) void bump(__u32 slot, __u64 len)
{
	struct counter *c = bpf_map_lookup_elem(&buckets, &slot);

	if (c) {
		c->packets += 1;
		c->bytes += len;
	}
}

SEC("xdp")
int xdp_calls(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct flow f = {};
	__u32 h;

	if (parse(data, data_end, &f) < 0)
		return XDP_PASS;
	h = flow_hash(&f);
	bump(h & 3, data_end - data);
	return (h & 3) == 0 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
