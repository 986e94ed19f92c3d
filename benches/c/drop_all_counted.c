// Baseline: drop every frame and count it, as the policy `default drop` does (every rule
// and the default carry a packet and byte counter in a per-CPU array).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct stat {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stat);
} stats SEC(".maps");

SEC("xdp")
int drop_all_counted(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct stat *s = bpf_map_lookup_elem(&stats, &key);

	if (s) {
		s->packets++;
		s->bytes += ctx->data_end - ctx->data;
	}
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
