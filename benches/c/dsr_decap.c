// The backends' side of the DSR testbed (testbeds/src/dsr.rs): strips an outer IPv4 header
// carrying IP-in-IP (protocol 4) or GUE variant 1 (UDP to port 6080, the IP packet straight
// after the UDP header) and hands the inner IPv4 packet to the stack, as tunl0 or a fou port
// would — and as Katran's backends can decapsulate in XDP. Anything else passes untouched.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GUE_PORT 6080

SEC("xdp")
int dsr_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return XDP_PASS;
	int strip;
	if (ip->protocol == IPPROTO_IPIP) {
		strip = sizeof(struct iphdr);
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > end || udp->dest != bpf_htons(GUE_PORT))
			return XDP_PASS;
		strip = sizeof(struct iphdr) + sizeof(struct udphdr);
	} else {
		return XDP_PASS;
	}
	unsigned char *inner = (unsigned char *)ip + strip;
	if ((void *)(inner + 1) > end || (*inner >> 4) != 4)
		return XDP_PASS;
	struct ethhdr mac;
	__builtin_memcpy(&mac, eth, sizeof(mac));
	if (bpf_xdp_adjust_head(ctx, strip))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth, &mac, sizeof(mac));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
