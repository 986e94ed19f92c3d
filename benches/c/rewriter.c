// A header rewriter: UDP to port 5353 gets its destination address and port rewritten (a
// NAT-like redirect to a local resolver), TTL decremented, the IPv4 checksum fixed with
// bpf_csum_diff and the UDP checksum incrementally; the MACs are swapped and the frame bounced.
// Frames with a TTL of 1 or less are dropped and counted.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

SEC("xdp")
int rewriter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp;
	__u32 k;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
		return XDP_PASS;
	if (ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end || udp->dest != bpf_htons(5353))
		return XDP_PASS;
	if (ip->ttl <= 1) {
		k = 1;
		__u64 *c = bpf_map_lookup_elem(&counts, &k);
		if (c)
			__sync_fetch_and_add(c, 1);
		return XDP_DROP;
	}
	k = 0;
	__u64 *c = bpf_map_lookup_elem(&counts, &k);
	if (c)
		__sync_fetch_and_add(c, 1);

	/* IPv4: new destination and TTL; checksum from scratch with csum_diff. */
	__u32 new_daddr = bpf_htonl(0x7f000035); /* 127.0.0.53 */
	__u32 old_daddr = ip->daddr;
	ip->daddr = new_daddr;
	ip->ttl--;
	ip->check = 0;
	__s64 sum = bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0);
	if (sum < 0)
		return XDP_ABORTED;
	ip->check = ~fold(sum);

	/* UDP: incremental update for the address (pseudo header) and the port. */
	if (udp->check) {
		__u64 s = (__u16)~udp->check;
		s += (__u16)~(old_daddr & 0xffff) + (__u16)~(old_daddr >> 16);
		s += (new_daddr & 0xffff) + (new_daddr >> 16);
		s += (__u16)~udp->dest + bpf_htons(53);
		__u16 f = ~fold(s);
		udp->check = f ? f : 0xffff;
	}
	udp->dest = bpf_htons(53);

	unsigned char tmp[ETH_ALEN];
	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
