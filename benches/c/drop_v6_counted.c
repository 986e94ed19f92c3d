// Baseline: drop IPv6 (also behind up to two VLAN tags), pass the rest, counting packets and
// bytes per decision (slot 0: the IPv6 rule, slot 1: the default) as the policy does.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct stat {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct stat);
} stats SEC(".maps");

static __always_inline int verdict(struct xdp_md *ctx, __u32 slot, int v)
{
	struct stat *s = bpf_map_lookup_elem(&stats, &slot);

	if (s) {
		s->packets++;
		s->bytes += ctx->data_end - ctx->data;
	}
	return v;
}

SEC("xdp")
int drop_v6_counted(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u16 proto;
	__u32 off = sizeof(*eth);

	if ((void *)(eth + 1) > data_end)
		return verdict(ctx, 1, XDP_PASS);
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if (data + off + 4 > data_end)
			return verdict(ctx, 1, XDP_PASS);
		proto = *(__u16 *)(data + off + 2);
		off += 4;
	}
	if (proto == bpf_htons(ETH_P_IPV6) && data + off + 40 <= data_end)
		return verdict(ctx, 0, XDP_DROP);
	return verdict(ctx, 1, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
