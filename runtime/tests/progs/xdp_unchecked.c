// Reads a packet byte without a bounds check: the verifier must reject this program.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_unchecked(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[12] == 0x08 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
