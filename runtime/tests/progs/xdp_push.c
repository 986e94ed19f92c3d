// Grows the frame by 4 bytes at the front, writes 0xdeadbeef there and bounces it (XDP_TX).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int xdp_push(struct xdp_md *ctx)
{
	void *data;
	void *data_end;
	__u32 *tag;

	if (bpf_xdp_adjust_head(ctx, -4))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	tag = data;
	if ((void *)(tag + 1) > data_end)
		return XDP_ABORTED;
	*tag = bpf_htonl(0xdeadbeef);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
