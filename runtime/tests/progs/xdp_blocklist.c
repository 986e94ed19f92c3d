// Drops IPv4 frames whose source address is in the `blocklist` hash map.
//
// The key is the source address in network byte order; the value is a u32 verdict
// that the program returns as is, so user space chooses the action per address.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} blocklist SEC(".maps");

SEC("xdp")
int xdp_blocklist(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 *verdict;
	__u32 src;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	src = ip->saddr;
	verdict = bpf_map_lookup_elem(&blocklist, &src);
	return verdict ? *verdict : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
